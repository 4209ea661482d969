//! The store's seam to the file system: every file operation the cache makes
//! goes through [`Files`], so that tests can run the store on a simulated disk
//! that forgets what was not made durable at a crash (`sim`, test-only).
//!
//! Owns the list of operations and their real implementations. Must never
//! grow policy: what is written where and in which order is the store's
//! business (`segment`, `durable`, `write`, `recover`); this is the narrowest
//! interface that lets a simulated disk see every write, fdatasync, rename,
//! delete and directory sync.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::SystemTime;

use super::disk;

/// What the store needs to know about a path (never following symlinks).
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub is_dir: bool,
    pub is_file: bool,
    pub len: u64,
    /// Bytes allocated, as `du` counts them.
    pub allocated: u64,
    /// The file system's preferred I/O size (exFAT reports its cluster).
    pub blksize: u64,
    pub modified: SystemTime,
}

/// The file operations of the store. Everything here blocks: callers run it
/// through `smol::unblock`.
pub trait Files: Send + Sync {
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Writes `bytes` at `offset`, creating the file; it grows as needed.
    fn write_at(&self, path: &Path, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// Creates or truncates `path` and writes `bytes` (not durable yet).
    fn create_with(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Fills `buf` from `offset` only if that needs no disk access (the path
    /// and the bytes are cached in memory): `Ok(true)` once filled, `Ok(false)`
    /// when it would have to wait on the disk. Never blocks, so it may run on
    /// the async loop. The default never reads (callers then use `read_at`).
    fn read_cached(&self, _path: &Path, _offset: u64, _buf: &mut [u8]) -> io::Result<bool> {
        Ok(false)
    }
    /// Sends `len` bytes of `path` from `offset` to `out` (a non-blocking
    /// socket) by sendfile(2), kernel to kernel, until they are all sent or
    /// the socket is full: `Ok(Some(sent))`, where `sent` may be short or 0.
    /// `Ok(None)` when this file system or kernel cannot (the caller then
    /// reads and writes). Blocks while the file's pages are not in memory:
    /// callers run it through `smol::unblock`. The default never sends.
    fn send_to(
        &self,
        _path: &Path,
        _offset: u64,
        _len: u64,
        _out: BorrowedFd<'_>,
    ) -> io::Result<Option<u64>> {
        Ok(None)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// fdatasync: the file's bytes and length are on the medium.
    fn sync_data(&self, path: &Path) -> io::Result<()>;
    /// fsync of a directory: its created, renamed and deleted entries are on the medium.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// The names in a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn metadata(&self, path: &Path) -> io::Result<Meta>;
    /// The file system's free space and size.
    fn space(&self, path: &Path) -> io::Result<disk::Sample>;
}

/// The real file system.
pub struct Real;

impl Files for Real {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn write_at(&self, path: &Path, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        file.write_all_at(bytes, offset)
    }

    fn create_with(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        File::create(path)?.write_all(bytes)
    }

    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        File::open(path)?.read_exact_at(buf, offset)
    }

    /// `openat2` with `RESOLVE_CACHED` (Linux 5.12) fails with EAGAIN unless
    /// every component of the path is in the dentry cache, and `preadv2` with
    /// `RWF_NOWAIT` (4.14) fails, or reads short, rather than wait for the
    /// disk. Any failure (an older kernel, a file system without NOWAIT, a
    /// page not cached) is "not now": `read_at` then reads, and reports real
    /// errors.
    fn read_cached(&self, path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<bool> {
        use rustix::fs::{openat2, Mode, OFlags, ResolveFlags, CWD};
        use rustix::io::{preadv2, ReadWriteFlags};
        let Ok(fd) = openat2(
            CWD,
            path,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::CACHED,
        ) else {
            return Ok(false);
        };
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            match preadv2(
                &fd,
                &mut [io::IoSliceMut::new(&mut buf[done..])],
                at,
                ReadWriteFlags::NOWAIT,
            ) {
                Ok(n) if n > 0 => done += n,
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    /// EINVAL, ENOSYS and EOPNOTSUPP before the first byte mean that this
    /// pair of file and socket cannot be spliced (some FUSE and network file
    /// systems; qemu-user without the syscall): `None`, and the caller reads.
    /// EAGAIN is a full socket. A file shorter than the range is an error: the
    /// store charged and verified those bytes, so they must be there.
    fn send_to(
        &self,
        path: &Path,
        offset: u64,
        len: u64,
        out: BorrowedFd<'_>,
    ) -> io::Result<Option<u64>> {
        use rustix::io::Errno;
        let file = File::open(path)?;
        let (mut at, end) = (offset, offset + len);
        while at < end {
            // sendfile moves at most 0x7ffff000 bytes a call anyway.
            let count = usize::try_from(end - at)
                .unwrap_or(usize::MAX)
                .min(0x7fff_f000);
            match rustix::fs::sendfile(out, &file, Some(&mut at), count) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{} ends before byte {at}", path.display()),
                    ))
                }
                Ok(_) => {}
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => {}
                Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) if at == offset => {
                    return Ok(None)
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some(at - offset))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn sync_data(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_data()
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for e in fs::read_dir(dir)? {
            // A name that is not UTF-8 is never the store's: an empty name
            // makes it a stranger to `recover`, as before the seam.
            names.push(e?.file_name().into_string().unwrap_or_default());
        }
        Ok(names)
    }

    fn metadata(&self, path: &Path) -> io::Result<Meta> {
        let m = fs::symlink_metadata(path)?;
        Ok(Meta {
            is_dir: m.is_dir(),
            is_file: m.is_file(),
            len: m.len(),
            allocated: m.blocks() * 512,
            blksize: m.blksize(),
            modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        })
    }

    fn space(&self, path: &Path) -> io::Result<disk::Sample> {
        disk::measure(path)
    }
}

/// Replaces `path` by `bytes` atomically: write `tmp`, fdatasync it, rename,
/// fsync the directory. After a crash either the old or the new content is
/// there, never a mix. A failed attempt removes its temp file: on a full disk
/// a half-written one would hold the very space the next attempt needs.
pub fn replace_atomically(
    files: &dyn Files,
    path: &Path,
    tmp: &Path,
    bytes: &[u8],
) -> io::Result<()> {
    let written = files
        .create_with(tmp, bytes)
        .and_then(|()| files.sync_data(tmp));
    if let Err(e) = written {
        let _ = files.remove_file(tmp);
        return Err(e);
    }
    files.rename(tmp, path)?;
    files.sync_dir(path.parent().unwrap_or(Path::new(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_read_gives_the_same_bytes_as_a_blocking_one_or_declines() {
        let dir = std::env::temp_dir().join(format!("streme-read-cached-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("segment");
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        Real.write_at(&path, 0, &bytes).unwrap();
        let mut got = vec![0u8; 100_000];
        if cached_open_supported(&path) {
            // Just written, so in the page cache: read in place, byte-exact.
            assert!(Real.read_cached(&path, 150_000, &mut got).unwrap());
            assert_eq!(got, bytes[150_000..250_000]);
        } else {
            // No openat2 with RESOLVE_CACHED here (Linux before 5.12, or qemu-user 7.2, which
            // answers ENOSYS): every read must decline, so that `read_at` does it.
            eprintln!("this kernel has no openat2(RESOLVE_CACHED): checking that reads decline");
            assert!(!Real.read_cached(&path, 150_000, &mut got).unwrap());
        }
        // Past the end of the file, or a missing file: declined, not a short or wrong read.
        let mut past = vec![0u8; 100_000];
        assert!(!Real.read_cached(&path, 250_000, &mut past).unwrap());
        assert!(!Real
            .read_cached(&dir.join("missing"), 0, &mut past)
            .unwrap());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Where sendfile cannot go (here an O_APPEND file, which the kernel refuses with EINVAL,
    /// as it does for file systems without splice and qemu-user without the syscall), a send
    /// declines before a byte moves, so that the caller reads instead; a missing file is an error.
    #[test]
    fn a_send_the_kernel_refuses_declines_and_a_missing_file_is_an_error() {
        use std::os::fd::AsFd;
        let dir = std::env::temp_dir().join(format!("streme-send-to-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("segment");
        Real.write_at(&path, 0, &[5u8; 10_000]).unwrap();
        let append = OpenOptions::new()
            .append(true)
            .create(true)
            .open(dir.join("out"))
            .unwrap();
        assert_eq!(Real.send_to(&path, 0, 4096, append.as_fd()).unwrap(), None);
        assert_eq!(fs::metadata(dir.join("out")).unwrap().len(), 0);
        let missing = Real.send_to(&dir.join("missing"), 0, 1, append.as_fd());
        assert_eq!(missing.unwrap_err().kind(), io::ErrorKind::NotFound);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Whether the kernel knows openat2 and its RESOLVE_CACHED flag (ENOSYS: no openat2;
    /// EINVAL: openat2 without the flag), asked of a path that is surely in the dentry cache.
    fn cached_open_supported(path: &Path) -> bool {
        use rustix::fs::{openat2, Mode, OFlags, ResolveFlags, CWD};
        match openat2(
            CWD,
            path,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::CACHED,
        ) {
            Ok(_) => true,
            Err(e) => e != rustix::io::Errno::NOSYS && e != rustix::io::Errno::INVAL,
        }
    }
}
