#[tokio::main]
async fn main() -> std::process::ExitCode {
    switchboard::cli::init_logging();
    match switchboard::cli::run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
