//! A real S3-compatible server for tests: moto's `moto_server` (PyPI `moto[server]`), started
//! on a free loopback port. `.ci/run` installs it with `scripts/install-s3-server.sh` into
//! `$CARGO_TARGET_DIR/mrs-moto`; a test that finds it missing installs it the same way. A server
//! that cannot start fails the test: it never skips.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use datafusion::object_store::ObjectStore;
use datafusion::object_store::aws::AmazonS3Builder;

pub const ACCESS_KEY: &str = "mrs-test-access";
/// A secret no command may print and no object may hold.
pub const SECRET_KEY: &str = "mrs-Secret-7f3a9c1e5b2d4068";

pub struct S3Server {
    child: Child,
    pub endpoint: String,
}

fn venv() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("mrs-moto")
}

fn server_binary() -> PathBuf {
    let bin = venv().join("bin/moto_server");
    if !bin.is_file() {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/install-s3-server.sh");
        let ok = Command::new("bash")
            .arg(&script)
            .arg(venv())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok && bin.is_file(),
            "cannot install the S3 test server (moto[server] from PyPI) with {}: the S3 tests \
             need it; run that script by hand to see why",
            script.display()
        );
    }
    bin
}

/// One HTTP/1.1 request without a body; the status code, or None if nothing answers.
fn http(port: u16, method: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

impl S3Server {
    /// Starts a server on a free loopback port and waits until it answers.
    pub fn start() -> Self {
        let bin = server_binary();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let mut child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the S3 test server {}: {e}", bin.display()));
        // Bounded by attempts, not by a clock: 600 tries 100 ms apart.
        for _ in 0..600 {
            if http(port, "GET", "/").is_some() {
                return Self {
                    child,
                    endpoint: format!("http://127.0.0.1:{port}"),
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the S3 test server {} exited at start: {status}",
                    bin.display()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = child.kill();
        panic!(
            "the S3 test server {} did not answer on port {port}",
            bin.display()
        );
    }

    fn port(&self) -> u16 {
        self.endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }

    pub fn create_bucket(&self, bucket: &str) {
        let status = http(self.port(), "PUT", &format!("/{bucket}"));
        assert_eq!(status, Some(200), "creating bucket {bucket}");
    }

    /// The environment a process needs to reach the server (and nothing else).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    }

    /// An object store client of a bucket, for inspecting what the lake holds.
    pub fn store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_endpoint(&self.endpoint)
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_access_key_id(ACCESS_KEY)
                .with_secret_access_key(SECRET_KEY)
                .build()
                .expect("s3 client"),
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
