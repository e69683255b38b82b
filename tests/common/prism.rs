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
    pub async fn start(spec: &Path) -> Prism {
        let bin = super::workspace().join("target/tools/node_modules/.bin/prism");
        assert!(bin.exists(), "{} is missing: run `make tools`", bin.display());
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut child = Command::new(bin)
            .args(["mock", "--host", "127.0.0.1", "-p", &port.to_string()])
            .arg(spec)
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
