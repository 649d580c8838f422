//! Reading the files devenv is given (configuration) and keeps (its state), so that none of them
//! can hang it, flood it or lead it elsewhere: only regular files are read (a FIFO would block
//! the read forever, `/dev/zero` would never end), each up to a size, opened without blocking;
//! a link that leads nowhere is an error rather than "no file"; and in devenv's own state
//! directory links are not followed at all.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// How a file that could not be used is described after its path: "is a FIFO, not a file".
pub type Why = String;

/// Whether to follow a symbolic link at the path itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Configuration: a link (a dotfiles manager's) is read through, unless it leads nowhere.
    Follow,
    /// devenv's state directory: a link there was not made by devenv and is refused.
    Refuse,
}

fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// The file's text, None when there is no file (and no link) at `path`.
pub fn read_text(path: &Path, limit: u64, links: Links) -> Result<Option<String>, Why> {
    let Some(bytes) = read(path, limit, links)? else {
        return Ok(None);
    };
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| "is not UTF-8 text".to_string())
}

/// The file's bytes, None when there is no file (and no link) at `path`.
pub fn read(path: &Path, limit: u64, links: Links) -> Result<Option<Vec<u8>>, Why> {
    let link = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot be read: {e}")),
        Ok(m) => m.file_type().is_symlink(),
    };
    if link && links == Links::Refuse {
        return Err("is a symbolic link, which devenv does not follow in its state directory".into());
    }
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new().read(true).custom_flags(flags).open(path);
    let mut file = match file {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && link => {
            let to = std::fs::read_link(path)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            return Err(format!("is a symbolic link to {to}, which does not exist"));
        }
        Err(e) => return Err(format!("cannot be read: {e}")),
        Ok(f) => f,
    };
    let meta = file.metadata().map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.file_type().is_file() {
        return Err(format!("is {}, not a file", kind_of(meta.file_type())));
    }
    if meta.len() > limit {
        return Err(format!("is larger than {} KiB", limit / 1024));
    }
    let mut bytes = Vec::new();
    file.by_ref()
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("is larger than {} KiB", limit / 1024));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("devenv-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn only_regular_files_are_read_and_none_without_end() {
        let d = dir("kinds");
        let fifo = d.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid path; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let t = std::time::Instant::now();
        assert_eq!(read(&fifo, 1024, Links::Follow).unwrap_err(), "is a FIFO, not a file");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(1),
            "it did not wait for a writer"
        );
        assert!(
            read(Path::new("/dev/zero"), 1024, Links::Follow)
                .unwrap_err()
                .contains("a device")
        );
        assert!(read(&d, 1024, Links::Follow).unwrap_err().contains("a directory"));
        std::fs::write(d.join("big"), vec![b'a'; 4096]).unwrap();
        assert!(
            read(&d.join("big"), 1024, Links::Follow)
                .unwrap_err()
                .contains("larger than 1 KiB")
        );
        assert_eq!(read(&d.join("none"), 1024, Links::Follow).unwrap(), None);
        std::fs::write(d.join("bad"), [0xff, 0xfe]).unwrap();
        assert_eq!(
            read_text(&d.join("bad"), 1024, Links::Follow).unwrap_err(),
            "is not UTF-8 text"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn links_lead_somewhere_or_are_errors_and_state_files_are_never_links() {
        let d = dir("links");
        std::fs::write(d.join("real"), "x").unwrap();
        std::os::unix::fs::symlink(d.join("real"), d.join("good")).unwrap();
        std::os::unix::fs::symlink(d.join("gone"), d.join("dangling")).unwrap();
        assert_eq!(
            read_text(&d.join("good"), 64, Links::Follow).unwrap().as_deref(),
            Some("x")
        );
        assert!(
            read(&d.join("dangling"), 64, Links::Follow)
                .unwrap_err()
                .contains("which does not exist")
        );
        assert!(
            read(&d.join("good"), 64, Links::Refuse)
                .unwrap_err()
                .contains("symbolic link")
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
