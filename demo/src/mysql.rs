//! Just enough of the MariaDB/MySQL client protocol for a connection pool: the v10 handshake
//! with `mysql_native_password`, and COM_PING on every use.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Duration;

pub struct Pool {
    addr: String,
    user: String,
    password: String,
    size: usize,
    /// Used in turn (first in, first out), so traffic keeps every connection of the pool
    /// alive, as pools with a minimum of idle connections do.
    idle: Mutex<VecDeque<TcpStream>>,
    opened: std::sync::Once,
}

impl Pool {
    pub fn new(addr: String, user: String, password: String, size: usize) -> Pool {
        Pool {
            addr,
            user,
            password,
            size: size.max(1),
            idle: Mutex::new(VecDeque::new()),
            opened: std::sync::Once::new(),
        }
    }

    /// Open every connection of the pool now (later calls only top it up).
    pub fn fill(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while idle.len() < self.size {
            match connect(&self.addr, &self.user, &self.password) {
                Ok(c) => idle.push_back(c),
                Err(e) => {
                    eprintln!("roll-demo: database {}: {e}", self.addr);
                    return;
                }
            }
        }
    }

    /// Use one pooled connection. A connection the server closed (its `wait_timeout`) is
    /// replaced by a new one, so an app that gets traffic keeps its pool.
    pub fn ping(&self) -> Result<(), String> {
        self.opened.call_once(|| self.fill());
        let conn = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
        let mut conn = match conn {
            Some(c) => c,
            None => connect(&self.addr, &self.user, &self.password)?,
        };
        if ping(&mut conn).is_err() {
            conn = connect(&self.addr, &self.user, &self.password)?;
            ping(&mut conn).map_err(|e| e.to_string())?;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.size {
            idle.push_back(conn);
        }
        Ok(())
    }
}

fn read_packet(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head)?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
    let mut body = vec![0; len];
    s.read_exact(&mut body)?;
    Ok((head[3], body))
}

fn write_packet(s: &mut TcpStream, seq: u8, body: &[u8]) -> std::io::Result<()> {
    let len = body.len() as u32;
    let mut buf = Vec::with_capacity(body.len() + 4);
    buf.extend_from_slice(&len.to_le_bytes()[..3]);
    buf.push(seq);
    buf.extend_from_slice(body);
    s.write_all(&buf)
}

/// SHA1(password) XOR SHA1(salt + SHA1(SHA1(password))).
fn scramble(password: &str, salt: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let h1 = sha1_smol::Sha1::from(password.as_bytes()).digest().bytes();
    let h2 = sha1_smol::Sha1::from(h1).digest().bytes();
    let mut m = sha1_smol::Sha1::new();
    m.update(salt);
    m.update(&h2);
    let h3 = m.digest().bytes();
    h1.iter().zip(h3.iter()).map(|(a, b)| a ^ b).collect()
}

fn connect(addr: &str, user: &str, password: &str) -> Result<TcpStream, String> {
    let err = |e: std::io::Error| e.to_string();
    let mut s = TcpStream::connect(addr).map_err(err)?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(err)?;
    let (_, hs) = read_packet(&mut s).map_err(err)?;
    if hs.first() == Some(&0xff) {
        return Err(String::from_utf8_lossy(hs.get(3..).unwrap_or_default()).into_owned());
    }
    // protocol(1) version\0 thread(4) salt1(8) filler(1) caps(2) charset(1) status(2) caps(2) saltlen(1) reserved(10) salt2
    let ver_end = hs.iter().skip(1).position(|&b| b == 0).ok_or("bad handshake")? + 1;
    let p = ver_end + 1 + 4;
    let mut salt = hs.get(p..p + 8).ok_or("bad handshake")?.to_vec();
    let q = p + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10;
    if let Some(rest) = hs.get(q..) {
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len()).min(12);
        salt.extend_from_slice(&rest[..end]);
    }
    let caps: u32 = 0x0000_0001 | 0x0000_0200 | 0x0000_2000 | 0x0000_8000 | 0x0008_0000;
    let mut resp = Vec::new();
    resp.extend_from_slice(&caps.to_le_bytes());
    resp.extend_from_slice(&(16u32 << 20).to_le_bytes());
    resp.push(33);
    resp.extend_from_slice(&[0; 23]);
    resp.extend_from_slice(user.as_bytes());
    resp.push(0);
    let auth = scramble(password, &salt);
    resp.push(auth.len() as u8);
    resp.extend_from_slice(&auth);
    resp.extend_from_slice(b"mysql_native_password\0");
    write_packet(&mut s, 1, &resp).map_err(err)?;
    let (seq, reply) = read_packet(&mut s).map_err(err)?;
    match reply.first() {
        Some(0x00) => Ok(s),
        Some(0xfe) => {
            // Auth switch: the server names the plugin and sends a new salt.
            let name_end = reply.iter().skip(1).position(|&b| b == 0).unwrap_or(0) + 1;
            let new_salt: Vec<u8> = reply[name_end + 1..].iter().copied().take_while(|&b| b != 0).collect();
            write_packet(&mut s, seq.wrapping_add(1), &scramble(password, &new_salt)).map_err(err)?;
            let (_, r) = read_packet(&mut s).map_err(err)?;
            if r.first() == Some(&0x00) {
                Ok(s)
            } else {
                Err(String::from_utf8_lossy(r.get(9..).unwrap_or_default()).into_owned())
            }
        }
        _ => Err(String::from_utf8_lossy(reply.get(9..).unwrap_or_default()).into_owned()),
    }
}

fn ping(s: &mut TcpStream) -> std::io::Result<()> {
    write_packet(s, 0, &[0x0e])?;
    let (_, r) = read_packet(s)?;
    if r.first() == Some(&0x00) {
        Ok(())
    } else {
        Err(std::io::Error::other("ping failed"))
    }
}
