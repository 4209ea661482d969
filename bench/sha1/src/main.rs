//! Hashes `TOTAL_MIB` MiB in 256 KiB pieces with each SHA-1 candidate and prints MB/s (min / median / max).
//!
//! 256 KiB is the piece size typical of video torrents; each piece is hashed as a fresh digest, exactly as
//! piece verification does it, so per-digest setup cost is included.

use std::hint::black_box;
use std::time::Instant;

const PIECE: usize = 256 * 1024;
const TOTAL_MIB: usize = 256;
const RUNS: usize = 7;

fn rustcrypto(piece: &[u8]) -> [u8; 20] {
    use sha1::Digest;
    sha1::Sha1::digest(piece).into()
}

fn smol(piece: &[u8]) -> [u8; 20] {
    sha1_smol::Sha1::from(piece).digest().bytes()
}

fn ring(piece: &[u8]) -> [u8; 20] {
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, piece);
    d.as_ref().try_into().expect("SHA-1 is 20 bytes")
}

/// What RustCrypto's runtime dispatch (cpufeatures) will find: SHA-NI on x86, the crypto extension on aarch64.
fn hardware_sha1() -> &'static str {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        let ni = std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse4.1");
        if ni { "yes (x86 SHA-NI)" } else { "no (x86 without SHA-NI)" }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("sha2") {
            "yes (ARMv8 crypto extension)"
        } else {
            "no (aarch64 without the crypto extension)"
        }
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "no (portable code only on this architecture)"
    }
}

fn main() {
    // Distinct bytes per piece, so nothing can be hoisted out of the loop.
    let data: Vec<u8> = (0..TOTAL_MIB * 1024 * 1024)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[1])
        .collect();

    let candidates: [(&str, fn(&[u8]) -> [u8; 20]); 3] = [
        ("sha1 0.11 (RustCrypto)", rustcrypto),
        ("sha1_smol 1", smol),
        ("ring 0.17 SHA1_FOR_LEGACY_USE_ONLY", ring),
    ];

    // The three must agree, or the comparison is meaningless.
    let first = &data[..PIECE];
    let reference = rustcrypto(first);
    for (name, f) in &candidates {
        assert_eq!(f(first), reference, "{name} disagrees with RustCrypto");
    }

    println!("hardware SHA-1 instructions detected: {}", hardware_sha1());
    println!();
    println!("| crate | min MB/s | median MB/s | max MB/s |");
    println!("|---|---:|---:|---:|");
    for (name, f) in &candidates {
        let mut speeds: Vec<f64> = (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                for piece in data.chunks_exact(PIECE) {
                    black_box(f(black_box(piece)));
                }
                data.len() as f64 / 1e6 / start.elapsed().as_secs_f64()
            })
            .collect();
        speeds.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} |",
            speeds[0],
            speeds[RUNS / 2],
            speeds[RUNS - 1]
        );
    }
}
