// Throw-away masters for the runnable documentation examples. A doc test `include!`s this
// file (in hidden lines) and gets `DocMasters`: `n` `redis-server` processes listening on Unix
// sockets in a temporary directory, without persistence, stopped when it is dropped. Like
// every test, an example that cannot start `redis-server` fails with a message saying so.

/// `n` throw-away masters on Unix sockets, stopped on drop.
pub struct DocMasters {
    children: Vec<std::process::Child>,
    urls: Vec<String>,
    _dir: tempfile::TempDir,
}

impl DocMasters {
    /// Starts `n` masters and waits (up to 10 s) until each one's socket exists.
    pub fn start(n: usize) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory for the masters' sockets");
        let mut children = Vec::with_capacity(n);
        let mut urls = Vec::with_capacity(n);
        for i in 0..n {
            let socket = dir.path().join(format!("m{i}.sock"));
            let child = std::process::Command::new("redis-server")
                .args(["--port", "0", "--save", "", "--appendonly", "no", "--unixsocket"])
                .arg(&socket)
                .current_dir(dir.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("this example needs `redis-server` on the PATH to run: {e}")
                });
            children.push(child);
            urls.push(format!("redis+unix://{}", socket.display()));
        }
        let masters = Self {
            children,
            urls,
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        for url in &masters.urls {
            let path = url.trim_start_matches("redis+unix://");
            while std::os::unix::net::UnixStream::connect(path).is_err() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "redis-server did not open {path} within 10 s"
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        masters
    }

    /// The masters' URLs (`redis+unix://…`).
    pub fn urls(&self) -> Vec<String> {
        self.urls.clone()
    }
}

impl Drop for DocMasters {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
