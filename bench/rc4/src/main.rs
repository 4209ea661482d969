//! RC4 over 1 GiB in 32 KiB chunks (the size streme's MSE writer encrypts at once, and about
//! what its reader decrypts per read), 5 runs: CPU seconds per GiB, and MB/s.
use rc4::{KeyInit, Rc4, StreamCipher};
use std::time::Instant;

fn main() {
    let mut buf = vec![0x5au8; 32 * 1024];
    let total: usize = 1 << 30;
    for run in 1..=5 {
        let mut rc4 = Rc4::new_from_slice(&[7u8; 20]).unwrap();
        let t = Instant::now();
        let cpu0 = cpu();
        for _ in 0..total / buf.len() {
            rc4.apply_keystream(&mut buf);
        }
        let (wall, cpu_s) = (t.elapsed().as_secs_f64(), cpu() - cpu0);
        println!(
            "run {run}: {:.0} MB/s wall, {:.2} CPU s per GiB (checksum {})",
            total as f64 / wall / 1e6,
            cpu_s,
            buf[17]
        );
    }
}

/// This process's user + system CPU seconds, from /proc/self/stat.
fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}
