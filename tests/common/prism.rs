//! Stoplight Prism serving an OpenAPI description as a validating mock
//! (installed by `make tools` into `target/tools`).

use std::path::Path;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Prism {
    pub url: String,
    _child: Child,
}

impl Prism {
    /// A mock of the described API.
    pub async fn start(spec: &Path) -> Prism {
        Self::run(&["mock"], spec, None).await
    }

    /// A proxy to `upstream` that validates every request and response
    /// against the description and answers an error for any violation.
    #[allow(dead_code)] // not every test binary proxies
    pub async fn proxy(spec: &Path, upstream: &str) -> Prism {
        Self::run(&["proxy", "--errors"], spec, Some(upstream)).await
    }

    async fn run(mode: &[&str], spec: &Path, upstream: Option<&str>) -> Prism {
        let bin = super::workspace().join("target/tools/node_modules/.bin/prism");
        assert!(bin.exists(), "{} is missing: run `make tools`", bin.display());
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut child = Command::new(bin)
            .args(mode)
            .args(["--host", "127.0.0.1", "-p", &port.to_string()])
            .arg(spec)
            .args(upstream)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("prism starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::time::timeout(super::GUARD, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("Prism is listening") {
                    return;
                }
            }
            panic!("prism exited before listening");
        })
        .await
        .expect("prism listens");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Prism { url: format!("http://127.0.0.1:{port}"), _child: child }
    }
}
