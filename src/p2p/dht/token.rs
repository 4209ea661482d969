//! announce_peer tokens (BEP 5): proof that an announcer asked get_peers
//! from the same IP address a short while ago.
//!
//! Owns the rotating secret. A token is SHA-1(secret ‖ IP), so nothing is
//! stored per requester and a flood of get_peers costs no memory. The secret
//! turns over every [`ROTATE_EVERY`] and the previous one is still accepted,
//! so a token lives 5 to 10 minutes, as BEP 5 suggests. Pure: time is passed in.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

/// BEP 5: "tokens up to ten minutes old are accepted".
pub const ROTATE_EVERY: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
pub struct Tokens {
    current: [u8; 16],
    previous: [u8; 16],
    rotated: Instant,
}

fn random_secret() -> [u8; 16] {
    fastrand::u128(..).to_le_bytes()
}

impl Tokens {
    pub fn new(now: Instant) -> Tokens {
        Tokens {
            current: random_secret(),
            previous: random_secret(),
            rotated: now,
        }
    }

    fn rotate_if_due(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.rotated);
        if elapsed >= ROTATE_EVERY * 2 {
            // Asleep for two periods: both secrets are too old.
            self.previous = random_secret();
            self.current = random_secret();
            self.rotated = now;
        } else if elapsed >= ROTATE_EVERY {
            self.previous = self.current;
            self.current = random_secret();
            self.rotated = now;
        }
    }

    /// The token to hand `ip` in a get_peers response.
    pub fn issue(&mut self, ip: IpAddr, now: Instant) -> Vec<u8> {
        self.rotate_if_due(now);
        token(&self.current, ip)
    }

    /// Whether `token` was issued to `ip` under the current or previous secret.
    pub fn accepts(&mut self, token: &[u8], ip: IpAddr, now: Instant) -> bool {
        self.rotate_if_due(now);
        token == token_of(&self.current, ip) || token == token_of(&self.previous, ip)
    }
}

fn token_of(secret: &[u8; 16], ip: IpAddr) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(secret);
    match ip {
        IpAddr::V4(v4) => h.update(v4.octets()),
        IpAddr::V6(v6) => h.update(v6.octets()),
    }
    h.finalize().into()
}

fn token(secret: &[u8; 16], ip: IpAddr) -> Vec<u8> {
    token_of(secret, ip).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn a_token_is_bound_to_the_ip_it_was_issued_to() {
        let now = Instant::now();
        let mut t = Tokens::new(now);
        let token = t.issue(A, now);
        assert_eq!(token.len(), 20);
        assert!(t.accepts(&token, A, now));
        assert!(!t.accepts(&token, B, now));
        assert!(!t.accepts(b"forged", A, now));
        assert!(!t.accepts(&[], A, now));
    }

    #[test]
    fn the_previous_secret_is_accepted_and_the_one_before_is_not() {
        let start = Instant::now();
        let mut t = Tokens::new(start);
        let token = t.issue(A, start);
        let one_rotation = start + ROTATE_EVERY;
        assert!(t.accepts(&token, A, one_rotation), "5 minutes old");
        assert_ne!(t.issue(A, one_rotation), token, "a new secret");
        let two_rotations = one_rotation + ROTATE_EVERY;
        assert!(!t.accepts(&token, A, two_rotations), "10 minutes old");
    }

    #[test]
    fn a_long_sleep_expires_every_token() {
        let start = Instant::now();
        let mut t = Tokens::new(start);
        let token = t.issue(A, start);
        assert!(!t.accepts(&token, A, start + ROTATE_EVERY * 3));
    }
}
