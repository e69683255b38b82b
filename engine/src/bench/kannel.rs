//! `kannel`: the peer the `keyword` scenario is held against, run on the
//! same machine: Kannel (Debian's `kannel` package, `bearerbox` and
//! `smsbox`) on loopback, with a keyword `sms-service` that answers `HOURS`
//! with the text keyword-reply sends, and a fake SMSC (Kannel's `smsc =
//! fake` line protocol, spoken here) that delivers the inbound messages and
//! takes the replies.
//!
//! Kannel runs as an operator would run it for speed: warnings-only logs and
//! no store file, so nothing it accepts is durable (Switchboard's `keyword`
//! commits every message before acknowledging it). The inbound messages go
//! over one connection as fast as bearerbox reads them; the throughput is
//! messages from the first written to the last reply read, after a warm-up.

use super::{Figure, Options, customer};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Where Debian's package installs the boxes (`apt-get install kannel`).
const BEARERBOX: &str = "/usr/sbin/bearerbox";
const SMSBOX: &str = "/usr/sbin/smsbox";
/// What keyword-reply answers to `HOURS` in the demo configuration.
const REPLY: &str = "Demo Store is open Mon-Fri 9am-6pm and Sat 10am-4pm.";
const NUMBER: &str = "+15550000000";

/// Kannel's two processes, stopped when dropped.
struct Boxes {
    bearerbox: Child,
    smsbox: Child,
    dir: PathBuf,
}

impl Drop for Boxes {
    fn drop(&mut self) {
        let _ = self.smsbox.start_kill();
        let _ = self.bearerbox.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Boxes {
    /// The CPU time both boxes have used.
    fn cpu(&self) -> Duration {
        [self.bearerbox.id(), self.smsbox.id()].into_iter().flatten().filter_map(super::cpu::process).sum()
    }
}

/// A free loopback port (bound, read, released).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `kannel.conf`: the core, one fake SMSC, one smsbox, the keyword service.
fn config(admin: u16, smsbox: u16, fake: u16) -> String {
    format!(
        r#"group = core
admin-port = {admin}
admin-password = bench
smsbox-port = {smsbox}
box-allow-ip = 127.0.0.1
log-level = 2

group = smsc
smsc = fake
smsc-id = fake
port = {fake}
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox}
log-level = 2

group = sms-service
keyword = hours
text = "{REPLY}"

group = sms-service
keyword = default
text = "Unknown keyword."
"#
    )
}

async fn start(dir: &Path) -> anyhow::Result<(Boxes, u16)> {
    for binary in [BEARERBOX, SMSBOX] {
        if !Path::new(binary).exists() {
            bail!("{binary} is missing: install Kannel first (apt-get install kannel)");
        }
    }
    std::fs::create_dir_all(dir)?;
    let (admin, smsbox, fake) = (free_port()?, free_port()?, free_port()?);
    let conf = dir.join("kannel.conf");
    std::fs::write(&conf, config(admin, smsbox, fake))?;
    let spawn = |binary: &str| {
        Command::new(binary)
            .arg(&conf)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {binary}"))
    };
    let bearerbox = spawn(BEARERBOX)?;
    // smsbox gives up if bearerbox is not there yet: start it once
    // bearerbox's admin port answers.
    drop(connect(admin, "admin").await?);
    let smsbox = spawn(SMSBOX)?;
    Ok((Boxes { bearerbox, smsbox, dir: dir.to_path_buf() }, fake))
}

/// Connects to one of bearerbox's ports once it listens there.
async fn connect(port: u16, what: &str) -> anyhow::Result<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(stream) => return Ok(stream),
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => bail!("bearerbox did not open its {what} port {port}: {e}"),
        }
    }
}

/// Writes `n` inbound `HOURS` (senders from `first`) and reads `n` replies;
/// returns when the last reply came.
async fn exchange(stream: &mut TcpStream, first: usize, n: usize) -> anyhow::Result<Instant> {
    let (read, mut write) = stream.split();
    let mut lines = BufReader::new(read).lines();
    let writer = async {
        let mut batch = String::new();
        for i in first..first + n {
            // sender receiver type text (Kannel's fake SMSC protocol)
            batch.push_str(&format!("{} {NUMBER} text HOURS\n", customer(i)));
            if batch.len() > 32 * 1024 {
                write.write_all(batch.as_bytes()).await?;
                batch.clear();
            }
        }
        write.write_all(batch.as_bytes()).await?;
        write.flush().await?;
        anyhow::Ok(())
    };
    let reader = async {
        let mut replies = 0;
        let mut last = Instant::now();
        while replies < n {
            let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
                .await
                .context("Kannel stopped answering")??
                .context("Kannel closed the fake SMSC connection")?;
            if line.starts_with(NUMBER) && line.ends_with(REPLY) {
                replies += 1;
                last = Instant::now();
            } else {
                bail!("an unexpected line from Kannel: {line:?}");
            }
        }
        anyhow::Ok(last)
    };
    let (written, last) = tokio::join!(writer, reader);
    written?;
    last
}

pub async fn run(opts: &Options) -> anyhow::Result<Vec<Figure>> {
    let dir = super::scratch_dir();
    let (boxes, port) = start(&dir).await?;
    let mut stream = connect(port, "fake SMSC").await?;
    // Warm-up, which also waits for smsbox to be connected: replies only
    // come once it is.
    let warm = opts.messages.min(1000);
    exchange(&mut stream, 5_000_000, warm).await?;
    let n = opts.messages;
    let cpu_before = boxes.cpu();
    let started = Instant::now();
    let last = exchange(&mut stream, 0, n).await?;
    let cpu = boxes.cpu().saturating_sub(cpu_before);
    let throughput = n as f64 / last.duration_since(started).as_secs_f64();
    drop(stream);
    drop(boxes);
    Ok(vec![
        Figure::new("kannel", "throughput", throughput, "msg/s"),
        Figure::new("kannel", "cpu_per_message", super::cpu::per_item_us(cpu, n), "us"),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_names_every_port_and_the_reply() {
        let conf = config(1, 2, 3);
        for line in ["admin-port = 1", "smsbox-port = 2", "bearerbox-port = 2", "port = 3", "keyword = hours"] {
            assert!(conf.lines().any(|l| l == line), "{line} in\n{conf}");
        }
        assert!(conf.contains(&format!("text = \"{REPLY}\"")));
    }
}
