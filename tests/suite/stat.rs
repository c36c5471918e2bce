//! `stat` and `slurp` on a real sshd host report what ansible-core reported for the same paths
//! (tests/modules/stat: each kind of path, links followed or not, the checksum, MIME and
//! attribute options). What differs from one run to the next (inode, device, times, the
//! attribute version) is compared with this machine's own metadata instead: the loopback host
//! is this machine.

use crate::common::oracle;
use std::os::unix::fs::MetadataExt;

const VOLATILE: [&str; 6] = ["inode", "dev", "atime", "mtime", "ctime", "version"];

fn without_volatile(v: &serde_json::Value) -> serde_json::Value {
    let mut v = v.clone();
    if let Some(st) = v.get_mut("stat").and_then(|s| s.as_object_mut()) {
        for k in VOLATILE {
            st.remove(k);
        }
    }
    v
}

#[test]
fn every_path_reports_what_ansible_reported() {
    let played = oracle::play("stat");
    let want: Vec<_> = played.want.iter().map(without_volatile).collect();
    let got: Vec<_> = played.got.iter().map(without_volatile).collect();
    oracle::assert_same(&want, &got);

    // The fields that change from run to run are this machine's own.
    let base = played.base.path().to_str().unwrap().to_string();
    let mut checked = 0;
    for r in &played.got {
        let Some(st) = r.get("stat") else { continue };
        if st["exists"] != true {
            continue;
        }
        let path = st["path"].as_str().unwrap().replace("BASE", &base);
        let follow = r["case"]["follow"] == true;
        let md = if follow {
            std::fs::metadata(&path)
        } else {
            std::fs::symlink_metadata(&path)
        }
        .unwrap();
        assert_eq!(st["inode"], md.ino(), "{path}");
        assert_eq!(st["dev"], md.dev(), "{path}");
        let mtime = md.mtime() as f64 + md.mtime_nsec() as f64 / 1e9;
        assert!(
            (st["mtime"].as_f64().unwrap() - mtime).abs() < 1e-5,
            "{path}: {} vs {mtime}",
            st["mtime"]
        );
        let ctime = md.ctime() as f64 + md.ctime_nsec() as f64 / 1e9;
        assert!((st["ctime"].as_f64().unwrap() - ctime).abs() < 1e-5, "{path}");
        checked += 1;
    }
    assert!(
        checked >= 15,
        "only {checked} paths were checked against their metadata"
    );
}
