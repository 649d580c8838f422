//! SCRAM-SHA-256 (RFC 5802/7677) as PostgreSQL uses it, on the sha2 crate: HMAC, PBKDF2 (Hi) and
//! base64 is the `base64` crate.

use sha2::{Digest, Sha256};

pub fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// PBKDF2-HMAC-SHA256 with one block: SCRAM's Hi().
pub fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut s = salt.to_vec();
    s.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(password, &s);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        for (o, x) in out.iter_mut().zip(u.iter()) {
            *o ^= x;
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648), as SCRAM and helm's storage use it: the `base64`
/// crate.
pub fn b64encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

pub fn b64decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s.trim()).ok()
}

/// A SCRAM client nonce: 18 bytes from the kernel's CSPRNG, base64 (never a value seen elsewhere,
/// such as the run's token).
pub fn nonce() -> Result<String, String> {
    use std::io::Read;
    let mut b = [0u8; 18];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("cannot read /dev/urandom for a SCRAM nonce: {e}"))?;
    Ok(b64encode(&b))
}

/// The client side of one SCRAM-SHA-256 exchange.
pub struct Scram {
    pub nonce: String,
    first_bare: String,
}

impl Scram {
    pub fn new(nonce: String) -> Self {
        Scram {
            first_bare: format!("n=,r={nonce}"),
            nonce,
        }
    }

    pub fn client_first(&self) -> String {
        format!("n,,{}", self.first_bare)
    }

    /// From the server's first message, the client's final message and the server signature to expect.
    pub fn client_final(&self, password: &str, server_first: &str) -> Option<(String, Vec<u8>)> {
        let field = |k: &str| server_first.split(',').find_map(|p| p.strip_prefix(k));
        let nonce = field("r=")?;
        if !nonce.starts_with(&self.nonce) {
            return None;
        }
        let salt = b64decode(field("s=")?)?;
        let iterations: u32 = field("i=")?.parse().ok()?;
        let salted = hi(password.as_bytes(), &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(signature.iter()).map(|(a, b)| a ^ b).collect();
        let server_key = hmac(&salted, b"Server Key");
        let server_signature = hmac(&server_key, auth_message.as_bytes()).to_vec();
        Some((format!("{without_proof},p={}", b64encode(&proof)), server_signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn scram_matches_rfc_7677_example() {
        // RFC 7677 section 3: user "user", password "pencil".
        let s = Scram {
            nonce: "rOprNGfwEbeRWgbNEkqO".into(),
            first_bare: "n=user,r=rOprNGfwEbeRWgbNEkqO".into(),
        };
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let (fin, sig) = s.client_final("pencil", server_first).unwrap();
        assert_eq!(
            fin,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(b64encode(&sig), "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    #[test]
    fn base64_round_trips() {
        for s in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
            assert_eq!(b64decode(&b64encode(s)).unwrap(), s);
        }
        assert_eq!(b64encode(b"foobar"), "Zm9vYmFy");
    }
}
