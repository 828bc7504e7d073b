//! A FUSE file system that loses what was not synced, for power-loss tests
//! (in the manner of LazyFS).
//!
//! [`LazyFs::mount`] mounts a view of a backing directory. Metadata changes
//! (creating, renaming, removing files and directories, permissions) reach
//! the backing directory at once, as a journaling file system would make
//! them durable; file contents do not. Every write and every size change
//! (truncate, `O_TRUNC`, `fallocate`) of a file is kept in memory, in
//! order, and reaches the backing file only when the file is synced
//! (`fsync` or `fdatasync`). Reads see the backing file with the pending
//! changes applied, exactly like a page cache. [`Mounted::crash`] drops
//! every pending change: the state a power loss leaves, where a file
//! created but never synced is there with whatever of its data was synced
//! (possibly nothing).
//!
//! Files are opened with direct I/O, so the kernel keeps no page cache of
//! its own that could outlive a crash. One request is served at a time.
//!
//! Needs `/dev/fuse` and the right to mount (root).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
};

/// Attributes are never cached by the kernel: sizes change underneath it
/// at a crash.
const TTL: Duration = Duration::ZERO;

/// One pending change of a file's content.
#[derive(Clone, Debug)]
enum Change {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

/// The unsynced changes of one file and the size they give it.
#[derive(Debug)]
struct Pending {
    changes: Vec<Change>,
    size: u64,
}

struct State {
    backing: PathBuf,
    /// Inode → path relative to the backing directory ("" for the root).
    paths: HashMap<u64, PathBuf>,
    inodes: HashMap<PathBuf, u64>,
    next_inode: u64,
    pending: HashMap<u64, Pending>,
    /// Open files: handle → (inode, backing file).
    handles: HashMap<u64, (u64, File)>,
    next_handle: u64,
    /// Bytes dropped by crashes so far.
    dropped: u64,
}

impl State {
    fn full(&self, relative: &Path) -> PathBuf {
        self.backing.join(relative)
    }

    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.paths.get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn inode_of(&mut self, relative: &Path) -> u64 {
        if let Some(ino) = self.inodes.get(relative) {
            return *ino;
        }
        let ino = self.next_inode;
        self.next_inode += 1;
        self.paths.insert(ino, relative.to_path_buf());
        self.inodes.insert(relative.to_path_buf(), ino);
        ino
    }

    fn forget_path(&mut self, relative: &Path) {
        if let Some(ino) = self.inodes.remove(relative) {
            self.paths.remove(&ino);
            self.pending.remove(&ino);
        }
    }

    fn attr(&self, ino: u64) -> Result<FileAttr, Errno> {
        let relative = self.paths.get(&ino).ok_or(Errno::ENOENT)?;
        let meta = std::fs::symlink_metadata(self.full(relative)).map_err(Errno::from)?;
        let kind = if meta.is_dir() {
            FileType::Directory
        } else if meta.file_type().is_symlink() {
            FileType::Symlink
        } else {
            FileType::RegularFile
        };
        let size = self.pending.get(&ino).map_or(meta.len(), |p| p.size);
        let time = |secs: i64, nanos: i64| {
            UNIX_EPOCH + Duration::new(secs.max(0) as u64, nanos.clamp(0, 999_999_999) as u32)
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: time(meta.atime(), meta.atime_nsec()),
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            crtime: SystemTime::UNIX_EPOCH,
            kind,
            perm: (meta.mode() & 0o7777) as u16,
            nlink: meta.nlink() as u32,
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    /// The pending changes of `ino`, started from its backing size.
    fn pending_of(&mut self, ino: u64) -> Result<&mut Pending, Errno> {
        if !self.pending.contains_key(&ino) {
            let relative = self.paths.get(&ino).ok_or(Errno::ENOENT)?;
            let size = std::fs::metadata(self.full(relative))
                .map_err(Errno::from)?
                .len();
            self.pending.insert(
                ino,
                Pending {
                    changes: Vec::new(),
                    size,
                },
            );
        }
        Ok(self.pending.get_mut(&ino).expect("inserted above"))
    }

    fn set_len(&mut self, ino: u64, len: u64) -> Result<(), Errno> {
        let pending = self.pending_of(ino)?;
        pending.changes.push(Change::SetLen(len));
        pending.size = len;
        Ok(())
    }

    /// Reads `size` bytes at `offset` as the file is now: the backing
    /// content with the pending changes applied.
    fn read(&self, ino: u64, file: &File, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let backing_len = file.metadata().map_err(Errno::from)?.len();
        let logical = self.pending.get(&ino).map_or(backing_len, |p| p.size);
        if offset >= logical {
            return Ok(Vec::new());
        }
        let end = (offset + u64::from(size)).min(logical);
        let mut buf = vec![0u8; (end - offset) as usize];
        if offset < backing_len {
            let n = ((backing_len.min(end)) - offset) as usize;
            file.read_exact_at(&mut buf[..n], offset)
                .map_err(Errno::from)?;
        }
        if let Some(pending) = self.pending.get(&ino) {
            for change in &pending.changes {
                match change {
                    Change::Write { offset: at, data } => {
                        let (from, to) = ((*at).max(offset), (*at + data.len() as u64).min(end));
                        if from < to {
                            buf[(from - offset) as usize..(to - offset) as usize]
                                .copy_from_slice(&data[(from - at) as usize..(to - at) as usize]);
                        }
                    }
                    Change::SetLen(len) => {
                        if *len < end {
                            let cut = len.saturating_sub(offset) as usize;
                            buf[cut..].fill(0);
                        }
                    }
                }
            }
        }
        Ok(buf)
    }

    /// Applies the pending changes of `ino` to its backing file and syncs it.
    fn sync(&mut self, ino: u64, file: &File) -> Result<(), Errno> {
        let Some(pending) = self.pending.remove(&ino) else {
            return Ok(());
        };
        for change in &pending.changes {
            match change {
                Change::Write { offset, data } => {
                    file.write_all_at(data, *offset).map_err(Errno::from)?
                }
                Change::SetLen(len) => file.set_len(*len).map_err(Errno::from)?,
            }
        }
        file.sync_all().map_err(Errno::from)
    }
}

/// The file system (see the module docs).
pub struct LazyFs {
    state: Arc<Mutex<State>>,
}

/// A mounted [`LazyFs`]; unmounted when dropped.
pub struct Mounted {
    state: Arc<Mutex<State>>,
    mountpoint: PathBuf,
    session: Option<fuser::BackgroundSession>,
}

impl Mounted {
    /// The directory the file system is mounted on.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// Simulates a power loss: every change not synced is gone. Returns how
    /// many bytes of pending writes were dropped. Kill the processes using
    /// the mount first, as a power loss would.
    pub fn crash(&self) -> u64 {
        let mut state = lock(&self.state);
        let bytes: u64 = state
            .pending
            .values()
            .flat_map(|p| &p.changes)
            .map(|c| match c {
                Change::Write { data, .. } => data.len() as u64,
                Change::SetLen(_) => 0,
            })
            .sum();
        state.pending.clear();
        state.dropped += bytes;
        bytes
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let _ = session.umount_and_join();
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl LazyFs {
    /// Mounts a view of `backing` on `mountpoint`.
    pub fn mount(backing: &Path, mountpoint: &Path) -> std::io::Result<Mounted> {
        let mut paths = HashMap::new();
        let mut inodes = HashMap::new();
        paths.insert(INodeNo::ROOT.0, PathBuf::new());
        inodes.insert(PathBuf::new(), INodeNo::ROOT.0);
        let state = Arc::new(Mutex::new(State {
            backing: backing.to_path_buf(),
            paths,
            inodes,
            next_inode: INodeNo::ROOT.0 + 1,
            pending: HashMap::new(),
            handles: HashMap::new(),
            next_handle: 1,
            dropped: 0,
        }));
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("partita-lazyfs".into()),
            MountOption::DefaultPermissions,
        ];
        config.acl = fuser::SessionACL::All;
        let fs = LazyFs {
            state: state.clone(),
        };
        let session = fuser::spawn_mount(fs, mountpoint, &config)?;
        Ok(Mounted {
            state,
            mountpoint: mountpoint.to_path_buf(),
            session: Some(session),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn entry(&self, parent: INodeNo, name: &OsStr) -> Result<FileAttr, Errno> {
        let mut state = self.state();
        let relative = state.path(parent)?.join(name);
        std::fs::symlink_metadata(state.full(&relative)).map_err(Errno::from)?;
        let ino = state.inode_of(&relative);
        state.attr(ino)
    }

    /// Removes the entry `name` of `parent` from the backing directory
    /// with `remove` (a file or a directory), and forgets its inode.
    fn remove(
        &self,
        parent: INodeNo,
        name: &OsStr,
        remove: fn(&Path) -> std::io::Result<()>,
    ) -> Result<(), Errno> {
        let mut state = self.state();
        let relative = state.path(parent)?.join(name);
        remove(&state.full(&relative)).map_err(Errno::from)?;
        state.forget_path(&relative);
        Ok(())
    }

    fn open_handle(&self, ino: u64, flags: i32) -> Result<u64, Errno> {
        let mut state = self.state();
        let relative = state.paths.get(&ino).cloned().ok_or(Errno::ENOENT)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(state.full(&relative))
            .map_err(Errno::from)?;
        if flags & libc::O_TRUNC != 0 {
            state.set_len(ino, 0)?;
        }
        let handle = state.next_handle;
        state.next_handle += 1;
        state.handles.insert(handle, (ino, file));
        Ok(handle)
    }
}

impl Filesystem for LazyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.entry(parent, name) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.state().attr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let result = (|| {
            let mut state = self.state();
            if let Some(mode) = mode {
                let path = state.full(&state.path(ino)?);
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    .map_err(Errno::from)?;
            }
            if let Some(size) = size {
                state.set_len(ino.0, size)?;
            }
            state.attr(ino.0)
        })();
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let result = (|| {
            let path = {
                let state = self.state();
                state.full(&state.path(parent)?.join(name))
            };
            std::fs::create_dir(&path).map_err(Errno::from)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(Errno::from)?;
            self.entry(parent, name)
        })();
        match result {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.remove(parent, name, |p| std::fs::remove_file(p)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.remove(parent, name, |p| std::fs::remove_dir(p)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let result = (|| {
            if !flags.is_empty() {
                return Err(Errno::EINVAL);
            }
            let mut state = self.state();
            let from = state.path(parent)?.join(name);
            let to = state.path(newparent)?.join(newname);
            std::fs::rename(state.full(&from), state.full(&to)).map_err(Errno::from)?;
            // The replaced entry is gone; the moved one (and, for a
            // directory, everything under it) keeps its inodes.
            state.forget_path(&to);
            let moved: Vec<(PathBuf, u64)> = state
                .inodes
                .iter()
                .filter(|(p, _)| p.starts_with(&from))
                .map(|(p, i)| (p.clone(), *i))
                .collect();
            for (old, ino) in moved {
                // (Joining an empty rest would add a trailing slash.)
                let rest = old.strip_prefix(&from).expect("filtered on the prefix");
                let new = if rest.as_os_str().is_empty() {
                    to.clone()
                } else {
                    to.join(rest)
                };
                state.inodes.remove(&old);
                state.inodes.insert(new.clone(), ino);
                state.paths.insert(ino, new);
            }
            Ok(())
        })();
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.open_handle(ino.0, flags.0) {
            Ok(handle) => reply.opened(FileHandle(handle), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let result = (|| {
            let path = {
                let state = self.state();
                state.full(&state.path(parent)?.join(name))
            };
            let mut options = OpenOptions::new();
            options.read(true).write(true).mode(mode);
            if flags & libc::O_EXCL != 0 {
                options.create_new(true);
            } else {
                options.create(true);
            }
            drop(options.open(&path).map_err(Errno::from)?);
            let attr = self.entry(parent, name)?;
            let handle = self.open_handle(attr.ino.0, flags)?;
            Ok((self.state().attr(attr.ino.0)?, handle))
        })();
        match result {
            Ok((attr, handle)) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(handle),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let state = self.state();
        let result = match state.handles.get(&fh.0) {
            Some((_, file)) => state.read(ino.0, file, offset, size),
            None => Err(Errno::EBADF),
        };
        match result {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut state = self.state();
        match state.pending_of(ino.0) {
            Ok(pending) => {
                pending.changes.push(Change::Write {
                    offset,
                    data: data.to_vec(),
                });
                pending.size = pending.size.max(offset + data.len() as u64);
                reply.written(data.len() as u32);
            }
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.state().handles.remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut state = self.state();
        let file = match state.handles.get(&fh.0) {
            Some((_, file)) => file.try_clone().map_err(Errno::from),
            None => Err(Errno::EBADF),
        };
        match file.and_then(|file| state.sync(ino.0, &file)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let result = (|| {
            let mut state = self.state();
            let relative = state.path(ino)?;
            let mut entries = vec![
                (ino.0, FileType::Directory, ".".into()),
                (ino.0, FileType::Directory, "..".into()),
            ];
            let mut names: Vec<_> = std::fs::read_dir(state.full(&relative))
                .map_err(Errno::from)?
                .filter_map(Result::ok)
                .collect();
            names.sort_by_key(|e| e.file_name());
            for e in names {
                let kind = if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    FileType::Directory
                } else {
                    FileType::RegularFile
                };
                let child = state.inode_of(&relative.join(e.file_name()));
                entries.push((child, kind, e.file_name()));
            }
            Ok(entries)
        })();
        match result {
            Ok(entries) => {
                for (i, (child, kind, name)) in
                    entries.into_iter().enumerate().skip(offset as usize)
                {
                    if reply.add(INodeNo(child), (i + 1) as u64, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Metadata reaches the backing directory at once.
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 24, 1 << 23, 1 << 23, 1 << 20, 1 << 19, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if mode != 0 {
            reply.error(Errno::EOPNOTSUPP);
            return;
        }
        let mut state = self.state();
        let result = state.pending_of(ino.0).map(|p| p.size).and_then(|size| {
            if offset + length > size {
                state.set_len(ino.0, offset + length)
            } else {
                Ok(())
            }
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn mounted() -> Option<(tempfile::TempDir, tempfile::TempDir, Mounted)> {
        // SAFETY: geteuid has no preconditions.
        if !Path::new("/dev/fuse").exists() || unsafe { libc::geteuid() } != 0 {
            eprintln!("skipping: mounting FUSE needs /dev/fuse and root");
            return None;
        }
        let backing = tempfile::tempdir().unwrap();
        let mountpoint = tempfile::tempdir().unwrap();
        let mounted = LazyFs::mount(backing.path(), mountpoint.path()).unwrap();
        Some((backing, mountpoint, mounted))
    }

    #[test]
    fn unsynced_data_is_lost_at_a_crash_and_synced_data_is_kept() {
        let Some((backing, _mountpoint, fs)) = mounted() else {
            return;
        };
        let dir = fs.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        let synced = dir.join("synced");
        let mut f = File::create(&synced).unwrap();
        f.write_all(b"durable").unwrap();
        f.sync_all().unwrap();
        f.write_all(b" and more").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&synced).unwrap(), b"durable and more");
        let unsynced = dir.join("unsynced");
        std::fs::write(&unsynced, b"volatile").unwrap();
        assert_eq!(std::fs::read(&unsynced).unwrap(), b"volatile");
        // Nothing unsynced reached the backing files.
        assert_eq!(
            std::fs::read(backing.path().join("d/synced")).unwrap(),
            b"durable"
        );
        assert_eq!(
            std::fs::read(backing.path().join("d/unsynced")).unwrap(),
            b""
        );
        assert_eq!(fs.crash(), 9 + 8);
        assert_eq!(std::fs::read(&synced).unwrap(), b"durable");
        assert_eq!(std::fs::read(&unsynced).unwrap(), b"");
    }

    #[test]
    fn renames_truncates_and_listings_behave_like_a_file_system() {
        let Some((_backing, _mountpoint, fs)) = mounted() else {
            return;
        };
        let tmp = fs.path().join(".tmp");
        let current = fs.path().join("current");
        std::fs::write(&current, b"old").unwrap();
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .unwrap();
        f.write_all(b"new contents").unwrap();
        f.sync_all().unwrap();
        drop(f);
        std::fs::rename(&tmp, &current).unwrap();
        assert_eq!(std::fs::read(&current).unwrap(), b"new contents");
        assert!(!tmp.exists());
        let f = OpenOptions::new().write(true).open(&current).unwrap();
        f.set_len(3).unwrap();
        drop(f);
        assert_eq!(std::fs::read(&current).unwrap(), b"new");
        std::fs::create_dir(fs.path().join("sub")).unwrap();
        std::fs::rename(&current, fs.path().join("sub/moved")).unwrap();
        assert_eq!(std::fs::read(fs.path().join("sub/moved")).unwrap(), b"new");
        let names: Vec<String> = std::fs::read_dir(fs.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["sub".to_string()]);
        // The truncation was never synced: the synced contents come back.
        fs.crash();
        assert_eq!(
            std::fs::read(fs.path().join("sub/moved")).unwrap(),
            b"new contents"
        );
    }
}
