//! `find` on a real sshd host reports what ansible-core reported for the same tree and options
//! (tests/modules/find). Files are compared as sets (sorted by path): both list a directory in
//! the filesystem's own order, which differs between machines. Inodes, devices and times are
//! this machine's own (the loopback host is this machine) and are checked against it.

use crate::common::oracle;
use std::os::unix::fs::MetadataExt;

fn normalised(v: &serde_json::Value) -> serde_json::Value {
    let mut v = v.clone();
    if let Some(files) = v.get_mut("files").and_then(|f| f.as_array_mut()) {
        for f in files.iter_mut() {
            let f = f.as_object_mut().unwrap();
            for k in ["inode", "dev", "atime", "mtime", "ctime"] {
                f.remove(k);
            }
        }
        files.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    }
    v
}

#[test]
fn every_option_finds_what_ansible_found() {
    let played = oracle::play("find");
    let want: Vec<_> = played.want.iter().map(normalised).collect();
    let got: Vec<_> = played.got.iter().map(normalised).collect();
    oracle::assert_same(&want, &got);

    let base = played.base.path().to_str().unwrap().to_string();
    let mut checked = 0;
    for r in &played.got {
        for f in r["files"].as_array().unwrap() {
            let path = f["path"].as_str().unwrap().replace("BASE", &base);
            let md = std::fs::symlink_metadata(&path).unwrap();
            assert_eq!(f["inode"], md.ino(), "{path}");
            let mtime = md.mtime() as f64 + md.mtime_nsec() as f64 / 1e9;
            assert!((f["mtime"].as_f64().unwrap() - mtime).abs() < 1e-5, "{path}");
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} files were checked against their metadata");
}
