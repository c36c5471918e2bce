//! Source files loaded by roll (playbooks, inventories, vars files, templates) and byte spans into them.
//! Every file is read here, so what roll refuses to read (not a regular file, over 64 MiB, a NUL
//! byte in input) is refused the same way for all of them.

use crate::secrets::Secrets;
use crate::vault::Keyring;
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The byte order mark some editors put at the start of a UTF-8 file.
const BOM: char = '\u{feff}';

/// The largest file roll reads as a playbook, inventory, variables file or template: far more
/// than any of them holds, and little enough that a wrong path (`/dev/zero`, a disk image) is
/// refused at once instead of filling the memory.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// What it is instead: `a directory`, `a character device`, `a named pipe`, ...
    #[error("it is {0}, not a regular file")]
    NotAFile(&'static str),
    #[error("it is larger than {} MiB", MAX_FILE_BYTES >> 20)]
    TooLarge,
    /// At the first one; the file is in the table, so that the span can be shown.
    #[error("it holds a NUL byte")]
    Nul(Span),
    /// A vault-encrypted file that the run's vault passwords do not open.
    #[error("it is vault-encrypted and {0}")]
    Vault(crate::vault::VaultError),
}

/// Index of a file in the [`Sources`] table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId(pub u32);

/// A byte range in one source file. Every identifier that came from a file keeps one,
/// so a late error can still point at the line it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span {
            file,
            start: start as u32,
            end: end.max(start) as u32,
        }
    }
}

/// One loaded file and the offsets of its line starts.
#[derive(Debug)]
pub struct SourceFile {
    /// The path as it should be shown to the user (relative when it was given relative).
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
    /// The file lies outside the project (`vars_files: [/etc/shadow]`): diagnostics name its
    /// lines but never show them.
    pub private: bool,
    /// The file was vault-encrypted: `text` is its plaintext, a secret. Diagnostics name its
    /// lines but never show them, and its values are masked in every report.
    pub vaulted: bool,
}

impl SourceFile {
    fn new(path: PathBuf, text: String, private: bool) -> SourceFile {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile {
            path,
            text,
            line_starts,
            private,
            vaulted: false,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).saturating_sub(1);
        let start = self.line_starts[line];
        let col = self.text.get(start..offset).map_or(0, |s| s.chars().count());
        (line + 1, col + 1)
    }

    /// Byte offset of a 1-based line and a 1-based column counted in characters.
    pub fn offset_of(&self, line: usize, col: usize) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let rest = &self.text[start..];
        let line_end = rest.find('\n').unwrap_or(rest.len());
        let line_text = &rest[..line_end];
        let byte_in_line = line_text
            .char_indices()
            .nth(col.saturating_sub(1))
            .map_or(line_text.len(), |(i, _)| i);
        start + byte_in_line
    }

    /// Byte offset of the end of the line holding `offset` (before the newline).
    pub fn line_end(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text[offset..].find('\n').map_or(self.text.len(), |i| offset + i)
    }
}

/// All files read during one run. Files are only added, never removed, so a [`FileId`] stays valid.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    files: Arc<RwLock<Vec<Arc<SourceFile>>>>,
    /// The directories of the project (the working directory, the playbook's, the
    /// inventory's), canonical; empty: every file counts as the project's.
    project: Arc<RwLock<Vec<PathBuf>>>,
    /// The run's vault passwords: vault-encrypted files and `!vault` values are decrypted as
    /// they are read.
    vault: Arc<RwLock<Keyring>>,
    /// The run's secrets: what a vault decrypts is added here, and every report masks it.
    secrets: Arc<Secrets>,
    /// The configured role search path (ansible.cfg's `roles_path` / ANSIBLE_ROLES_PATH, as the
    /// settings resolved it); `None`: the role loader reads ANSIBLE_ROLES_PATH itself.
    roles_path: Arc<RwLock<Option<Vec<PathBuf>>>>,
    /// The configured `filter_plugins` and `test_plugins` paths, in the same way.
    plugin_paths: Arc<RwLock<[Option<Vec<PathBuf>>; 2]>>,
}

impl Sources {
    pub fn new() -> Sources {
        Sources::default()
    }

    /// Name the project's directories: files read from elsewhere are private from then on.
    pub fn set_project(&self, roots: impl IntoIterator<Item = PathBuf>) {
        let roots = roots.into_iter().filter_map(|r| r.canonicalize().ok()).collect();
        *self.project.write().unwrap_or_else(|e| e.into_inner()) = roots;
    }

    /// Count one more directory as the project's: a role the playbook names is the operator's
    /// code wherever the role search path found it.
    pub fn add_project(&self, root: &Path) {
        let mut roots = self.project.write().unwrap_or_else(|e| e.into_inner());
        if !roots.is_empty()
            && let Ok(r) = root.canonicalize()
            && !roots.iter().any(|p| r.starts_with(p))
        {
            roots.push(r);
        }
    }

    /// Whether a file on disk lies outside every project directory.
    fn outside_project(&self, path: &Path) -> bool {
        let roots = self.project.read().unwrap_or_else(|e| e.into_inner());
        !roots.is_empty()
            && path
                .canonicalize()
                .is_ok_and(|p| !roots.iter().any(|r| p.starts_with(r)))
    }

    /// Give the run's vault passwords: files and values read from now on are decrypted with them.
    pub fn set_vault(&self, keyring: Keyring) {
        *self.vault.write().unwrap_or_else(|e| e.into_inner()) = keyring;
    }

    /// The run's vault passwords.
    pub fn vault(&self) -> Keyring {
        self.vault.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Name the configured role search path.
    pub fn set_roles_path(&self, dirs: Vec<PathBuf>) {
        *self.roles_path.write().unwrap_or_else(|e| e.into_inner()) = Some(dirs);
    }

    /// The configured role search path, if the settings gave one.
    pub fn roles_path(&self) -> Option<Vec<PathBuf>> {
        self.roles_path.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Name the configured `filter_plugins` and `test_plugins` paths.
    pub fn set_plugin_paths(&self, filters: Option<Vec<PathBuf>>, tests: Option<Vec<PathBuf>>) {
        *self.plugin_paths.write().unwrap_or_else(|e| e.into_inner()) = [filters, tests];
    }

    /// The configured `filter_plugins` (`tests: false`) or `test_plugins` path, if the settings gave one.
    pub fn plugin_path(&self, tests: bool) -> Option<Vec<PathBuf>> {
        self.plugin_paths.read().unwrap_or_else(|e| e.into_inner())[usize::from(tests)].clone()
    }

    /// The run's secrets (decrypted vault values among them), which every report masks.
    pub fn secrets(&self) -> &Arc<Secrets> {
        &self.secrets
    }

    /// Add a file's text; returns its id.
    pub fn add(&self, path: impl Into<PathBuf>, text: String) -> FileId {
        self.push(SourceFile::new(path.into(), text, false))
    }

    fn push(&self, file: SourceFile) -> FileId {
        let mut files = self.files.write().unwrap_or_else(|e| e.into_inner());
        files.push(Arc::new(file));
        FileId((files.len() - 1) as u32)
    }

    /// Add a file read from disk, private when it lies outside the project.
    fn add_read(&self, path: &Path, text: String) -> FileId {
        self.push(SourceFile::new(display_path(path), text, self.outside_project(path)))
    }

    /// Read an input file (a playbook, an inventory, a variables file) from disk and add it. A
    /// UTF-8 byte order mark at its start is not part of the text: editors on Windows write one,
    /// and spans count from the first character the user sees. A NUL byte is refused: input is
    /// text, and a NUL means a binary file or another encoding (UTF-16), which the parsers would
    /// report as some other, misleading error.
    /// A vault-encrypted file is decrypted with the run's vault passwords; its text is then a
    /// secret (see [`SourceFile::vaulted`]).
    pub fn load(&self, path: &Path) -> Result<FileId, LoadError> {
        let mut text = read_text(path)?;
        if text.starts_with(BOM) {
            text.drain(..BOM.len_utf8());
        }
        let vaulted = crate::vault::is_vaulted(&text);
        if vaulted {
            text = self.vault().decrypt(&text).map_err(LoadError::Vault)?;
            if text.starts_with(BOM) {
                text.drain(..BOM.len_utf8());
            }
        }
        let nul = text.find('\0');
        let id = if vaulted {
            let mut file = SourceFile::new(display_path(path), text, self.outside_project(path));
            file.vaulted = true;
            self.push(file)
        } else {
            self.add_read(path, text)
        };
        match nul {
            Some(at) => Err(LoadError::Nul(Span::new(id, at, at + 1))),
            None => Ok(id),
        }
    }

    /// Read a template from disk and add it as written: a byte order mark in it is rendered. A
    /// vault-encrypted template is decrypted, and its whole text becomes a secret.
    pub fn load_template(&self, path: &Path) -> Result<FileId, LoadError> {
        let text = read_text(path)?;
        if crate::vault::is_vaulted(&text) {
            let plain = self.vault().decrypt(&text).map_err(LoadError::Vault)?;
            self.secrets.add(&plain);
            let mut file = SourceFile::new(display_path(path), plain, self.outside_project(path));
            file.vaulted = true;
            return Ok(self.push(file));
        }
        Ok(self.add_read(path, text))
    }

    /// Whether a file on disk is vault-encrypted (only its first bytes are read).
    pub fn is_vaulted_file(path: &Path) -> bool {
        let mut head = [0u8; 64];
        let n = std::fs::File::open(path)
            .and_then(|mut f| f.read(&mut head))
            .unwrap_or(0);
        std::str::from_utf8(&head[..n]).is_ok_and(crate::vault::is_vaulted)
    }

    /// The bytes of a controller file a task sends (a `copy` source), decrypted when it is
    /// vault-encrypted (then its text is a secret), as Ansible's `copy` does.
    pub fn read_controller_file(&self, path: &Path) -> Result<Vec<u8>, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        let Some(text) = std::str::from_utf8(&bytes).ok().filter(|t| crate::vault::is_vaulted(t)) else {
            return Ok(bytes);
        };
        let plain = self
            .vault()
            .decrypt_bytes(text)
            .map_err(|e| format!("cannot read `{}`: it is vault-encrypted and {e}", path.display()))?;
        if let Ok(t) = std::str::from_utf8(&plain) {
            self.secrets.add(t);
        }
        Ok(plain)
    }

    pub fn get(&self, id: FileId) -> Arc<SourceFile> {
        let files = self.files.read().unwrap_or_else(|e| e.into_inner());
        files[id.0 as usize].clone()
    }

    /// Whether any file read so far holds `needle`.
    pub fn mention(&self, needle: &str) -> bool {
        let files = self.files.read().unwrap_or_else(|e| e.into_inner());
        files.iter().any(|f| f.text.contains(needle))
    }

    /// `file:line:col` of the start of a span.
    pub fn location(&self, span: Span) -> String {
        let file = self.get(span.file);
        let (line, col) = file.line_col(span.start as usize);
        format!("{}:{}:{}", file.path.display(), line, col)
    }
}

/// Read a regular file of at most `MAX_FILE_BYTES` as UTF-8. What the path names and its size
/// are checked before anything is read, so `/dev/zero` or a named pipe is refused at once; the
/// read stops one byte past the limit, so a file that grows meanwhile cannot slip past.
fn read_text(path: &Path) -> Result<String, LoadError> {
    regular_file(&std::fs::metadata(path)?)?;
    // A path swapped for a named pipe after that check must not block the open; the file opened
    // is checked again.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    regular_file(&meta)?;
    let bytes = read_at_most(file, meta.len(), MAX_FILE_BYTES)?;
    String::from_utf8(bytes).map_err(|_| {
        LoadError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ))
    })
}

fn regular_file(meta: &std::fs::Metadata) -> Result<(), LoadError> {
    let t = meta.file_type();
    if !t.is_file() {
        return Err(LoadError::NotAFile(if t.is_dir() {
            "a directory"
        } else if t.is_char_device() {
            "a character device"
        } else if t.is_block_device() {
            "a block device"
        } else if t.is_fifo() {
            "a named pipe"
        } else if t.is_socket() {
            "a socket"
        } else {
            "something else"
        }));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(LoadError::TooLarge);
    }
    Ok(())
}

/// At most `limit` bytes of `r`, or `TooLarge` if it holds more; `expected` sizes the buffer.
fn read_at_most(r: impl std::io::Read, expected: u64, limit: u64) -> Result<Vec<u8>, LoadError> {
    let mut buf = Vec::with_capacity(expected.min(limit) as usize);
    r.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(LoadError::TooLarge);
    }
    Ok(buf)
}

/// A path as the user should see it: relative to the working directory when it lies below it.
pub fn display_path(path: &Path) -> PathBuf {
    if let Ok(rest) = path.strip_prefix(".") {
        return rest.to_path_buf();
    }
    if let Ok(cwd) = std::env::current_dir()
        && let Ok(rel) = path.strip_prefix(&cwd)
    {
        return rel.to_path_buf();
    }
    path.to_path_buf()
}

/// Where a controller file named by a task is looked for (`templates/` or `files/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceDir {
    Templates,
    Files,
    /// `include_vars` files and `with_first_found` of a vars module.
    Vars,
}

impl SourceDir {
    pub fn name(self) -> &'static str {
        match self {
            SourceDir::Templates => "templates",
            SourceDir::Files => "files",
            SourceDir::Vars => "vars",
        }
    }
}

/// Where a `template`/`copy` source lives: `templates/` (or `files/`) beside the playbook, the
/// playbook's directory, `templates/` (or `files/`) beside the playbook's directory (the
/// repository layout with `playbooks/` and `templates/` side by side), then the working directory.
pub fn find_source(playbook_dir: &Path, src: &str, dir: SourceDir) -> Option<PathBuf> {
    find_source_in(None, playbook_dir, src, dir)
}

/// `find_source` for a task of a role: the role's `templates/` (or `files/`), the role's
/// directory and its `tasks/` come first, as in Ansible.
pub fn find_source_in(role_dir: Option<&Path>, playbook_dir: &Path, src: &str, dir: SourceDir) -> Option<PathBuf> {
    search(role_dir, playbook_dir, src, dir, Path::is_file)
}

/// Like `find_source_in`, but a directory is found too (`include_vars: dir:`).
pub fn find_path_in(role_dir: Option<&Path>, playbook_dir: &Path, src: &str, dir: SourceDir) -> Option<PathBuf> {
    search(role_dir, playbook_dir, src, dir, Path::exists)
}

/// A task's controller source that is not there when the task runs, in ansible-core 2.19's
/// words (its action plugins' `AnsibleFileNotFound`): a relative name lists where it was looked
/// for.
pub fn missing_on_controller(role_dir: Option<&Path>, playbook_dir: &Path, src: &str, dir: SourceDir) -> String {
    let tail = " on the Ansible Controller.\nIf you are using a module and expect the file to exist on the remote, see the remote_src option";
    if Path::new(src).is_absolute() {
        return format!("Could not find or access '{src}'{tail}");
    }
    let mut seen: Vec<PathBuf> = Vec::new();
    for c in candidates(role_dir, playbook_dir, Path::new(src), dir) {
        let c = std::path::absolute(&c).unwrap_or(c);
        if !seen.contains(&c) {
            seen.push(c);
        }
    }
    let searched: Vec<String> = seen.iter().map(|c| format!("\t{}", c.display())).collect();
    format!(
        "Could not find or access '{src}'\nSearched in:\n{}{tail}",
        searched.join("\n")
    )
}

/// Where a relative source name is looked for, in order.
fn candidates(role_dir: Option<&Path>, playbook_dir: &Path, p: &Path, dir: SourceDir) -> Vec<PathBuf> {
    let sub = dir.name();
    let role = role_dir
        .map(|r| vec![r.join(sub).join(p), r.join(p), r.join("tasks").join(p)])
        .unwrap_or_default();
    let sibling = playbook_dir.join("..").join(sub).join(p);
    role.into_iter()
        .chain([
            playbook_dir.join(sub).join(p),
            playbook_dir.join(p),
            sibling,
            Path::new(sub).join(p),
            p.to_path_buf(),
        ])
        .collect()
}

fn search(
    role_dir: Option<&Path>,
    playbook_dir: &Path,
    src: &str,
    dir: SourceDir,
    wanted: fn(&Path) -> bool,
) -> Option<PathBuf> {
    let p = Path::new(src);
    if p.is_absolute() {
        return wanted(p).then(|| p.to_path_buf());
    }
    candidates(role_dir, playbook_dir, p, dir)
        .into_iter()
        .find(|c| wanted(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_file_loses_its_byte_order_mark_and_a_template_keeps_it() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("play.yml");
        std::fs::write(&path, "\u{feff}- hosts: all\n").unwrap();
        let s = Sources::new();
        let input = s.load(&path).unwrap();
        assert_eq!(s.get(input).text, "- hosts: all\n");
        assert_eq!(
            s.location(Span::new(input, 2, 7)),
            format!("{}:1:3", display_path(&path).display())
        );
        let template = s.load_template(&path).unwrap();
        assert_eq!(s.get(template).text, "\u{feff}- hosts: all\n");
    }

    #[test]
    fn what_is_not_a_regular_file_or_too_large_is_refused_before_reading() {
        let s = Sources::new();
        let err = |p: &str| s.load(Path::new(p)).unwrap_err().to_string();
        assert_eq!(err("/dev/zero"), "it is a character device, not a regular file");
        assert_eq!(err("/"), "it is a directory, not a regular file");
        let d = tempfile::tempdir().unwrap();
        let big = d.path().join("big.yml");
        // Sparse: nothing is written, and nothing may be read.
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_FILE_BYTES + 1)
            .unwrap();
        assert!(matches!(s.load(&big), Err(LoadError::TooLarge)));
        assert!(matches!(s.load_template(&big), Err(LoadError::TooLarge)));
        let fifo = d.path().join("fifo.yml");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo reads the NUL-terminated path it is given.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert_eq!(
            s.load(&fifo).unwrap_err().to_string(),
            "it is a named pipe, not a regular file"
        );
    }

    #[test]
    fn a_nul_byte_in_an_input_file_is_refused_where_it_is() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("hosts");
        std::fs::write(&path, "\u{feff}[app]\napp1 x=a\0b\n").unwrap();
        let s = Sources::new();
        match s.load(&path) {
            Err(LoadError::Nul(span)) => {
                assert_eq!(s.location(span), format!("{}:2:9", display_path(&path).display()))
            }
            other => panic!("{other:?}"),
        }
        // A template is rendered as written.
        assert!(s.load_template(&path).is_ok());
    }

    #[test]
    fn a_file_growing_past_the_limit_while_it_is_read_is_refused() {
        // An endless reader stands for a file that grows after its size was checked.
        assert!(matches!(
            read_at_most(std::io::repeat(b'x'), 10, 1000),
            Err(LoadError::TooLarge)
        ));
        assert_eq!(read_at_most(&b"12345"[..], 5, 5).unwrap(), b"12345");
    }

    #[test]
    fn line_col_round_trips() {
        let f = SourceFile::new("x".into(), "ab\ncdé\nf".into(), false);
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(3), (2, 1));
        assert_eq!(f.offset_of(2, 3), 5);
        assert_eq!(f.line_col(7), (2, 4));
        assert_eq!(f.offset_of(3, 1), 8);
        assert_eq!(f.line_end(3), 7);
    }
}
