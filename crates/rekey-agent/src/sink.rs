//! Where a new secret goes: a file (the secret and a newline), a line of an env file, or
//! standard output. Files are written atomically with mode 0600 (a temporary file beside the
//! target, fsynced, renamed over it), so a reader sees the old secret or the new one, never
//! half of one.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

/// Where the new secret goes.
pub enum Sink {
    File(PathBuf),
    EnvFile(PathBuf, String),
    Stdout,
}

impl Sink {
    /// How the sink is named in messages.
    pub fn describe(&self) -> String {
        match self {
            Sink::File(p) => p.display().to_string(),
            Sink::EnvFile(p, k) => format!("{} ({k})", p.display()),
            Sink::Stdout => "standard output".into(),
        }
    }

    /// Fails early if the sink cannot be written (a probe file beside the target).
    pub fn check_writable(&self) -> std::io::Result<()> {
        let path = match self {
            Sink::File(p) | Sink::EnvFile(p, _) => p,
            Sink::Stdout => return Ok(()),
        };
        let probe = sibling(path, "probe");
        write_private(&probe, b"")?;
        std::fs::remove_file(&probe)
    }
}

/// A hidden file beside `path`, with a random part: nobody can name it in advance (to plant a
/// link there), and two writers never share one.
fn sibling(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nonce = rekey_core::crypto::random_hex(8);
    path.with_file_name(format!(
        ".{name}.rekey-{what}-{}-{nonce}",
        std::process::id()
    ))
}

/// Writes `content` to `path` atomically with mode 0600: a new temporary file beside it
/// (`O_EXCL`, so never through a link someone put there), fsynced, renamed over it, and the
/// directory fsynced. A failure removes the temporary file.
pub fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let tmp = sibling(path, "tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let written = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return written;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Writes `secret` to `sink`; standard output is the caller's to print.
pub fn write_sink(sink: &Sink, secret: &SecretString) -> std::io::Result<()> {
    match sink {
        Sink::File(p) => write_private(p, format!("{}\n", secret.expose_secret()).as_bytes()),
        Sink::EnvFile(p, key) => {
            let old = match std::fs::read_to_string(p) {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(e),
            };
            write_private(
                p,
                replace_env_line(&old, key, secret.expose_secret()).as_bytes(),
            )
        }
        Sink::Stdout => Ok(()),
    }
}

/// `old` with the line `KEY=...` replaced by `KEY=value` (or added at the end).
pub fn replace_env_line(old: &str, key: &str, value: &str) -> String {
    let prefix = format!("{key}=");
    let mut replaced = false;
    let mut lines: Vec<String> = old
        .lines()
        .map(|l| {
            if l.starts_with(&prefix) && !replaced {
                replaced = true;
                format!("{prefix}{value}")
            } else {
                l.to_string()
            }
        })
        .collect();
    if !replaced {
        lines.push(format!("{prefix}{value}"));
    }
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_env_line_is_replaced_in_place_or_added() {
        assert_eq!(
            replace_env_line("A=1\nCLIENT_SECRET=old\nB=2\n", "CLIENT_SECRET", "new"),
            "A=1\nCLIENT_SECRET=new\nB=2\n"
        );
        assert_eq!(
            replace_env_line("A=1\n", "CLIENT_SECRET", "new"),
            "A=1\nCLIENT_SECRET=new\n"
        );
        assert_eq!(replace_env_line("", "K", "v"), "K=v\n");
        assert_eq!(
            replace_env_line("CLIENT_SECRET_OLD=x\n", "CLIENT_SECRET", "n"),
            "CLIENT_SECRET_OLD=x\nCLIENT_SECRET=n\n"
        );
    }

    #[test]
    fn a_file_sink_is_written_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("rekey-rotate-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("secret");
        write_sink(
            &Sink::File(p.clone()),
            &SecretString::from("s3cret".to_string()),
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "s3cret\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
