//! TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, ±1 step accepted) through `totp-rs`. The caller
//! prevents replays by storing the last accepted step and accepting only later ones.

use totp_rs::{Algorithm, Builder, Secret, Totp};

/// 20 random bytes: a 32-character base32 secret, as the original generated.
pub fn new_secret() -> String {
    let bytes: [u8; 20] = rand::random();
    Secret::from(bytes.to_vec()).to_base32()
}

fn build(secret_b32: &str, issuer: &str, account: &str) -> Option<Totp> {
    let secret = Secret::try_from_base32(secret_b32).ok()?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(secret)
        .with_account_name(account)
        .with_issuer(Some(issuer))
        .build()
        .ok()
}

/// `(otpauth URI, "data:image/png;base64,..." QR code)` for an authenticator app.
pub fn provisioning(secret_b32: &str, issuer: &str, account: &str) -> Option<(String, String)> {
    let t = build(secret_b32, issuer, account)?;
    let uri = t.to_url().ok()?;
    let png = t.to_qr_base64().ok()?;
    Some((uri, format!("data:image/png;base64,{png}")))
}

/// The time step the code matches at `now` (within ±1 step), if any.
pub fn matching_step(secret_b32: &str, code: &str, now_epoch: i64) -> Option<u64> {
    if !nusatrade_domain::auth::totp_code_is_well_formed(code) || now_epoch < 0 {
        return None;
    }
    // the account name plays no part in the code
    build(secret_b32, "NusaTrade", "user")?.check(code, now_epoch as u64)
}

/// The code for `now` (tests and tools).
pub fn code_at(secret_b32: &str, now_epoch: i64) -> Option<String> {
    Some(build(secret_b32, "NusaTrade", "user")?.generate(now_epoch.max(0) as u64).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_codes_and_provisioning() {
        let s = new_secret();
        assert_eq!(s.len(), 32);
        let now = 1_800_000_015;
        let code = code_at(&s, now).unwrap();
        assert_eq!(code.len(), 6);
        let step = matching_step(&s, &code, now).unwrap();
        assert_eq!(step, (now / 30) as u64);
        assert_eq!(matching_step(&s, &code, now + 30), Some(step), "one step of skew is accepted");
        assert_eq!(matching_step(&s, &code, now + 90), None);
        assert_eq!(matching_step(&s, "12345x", now), None);
        assert_eq!(matching_step("not base32!", &code, now), None);
        let (uri, qr) = provisioning(&s, "NusaTrade", "ana@example.com").unwrap();
        assert!(uri.starts_with("otpauth://totp/NusaTrade:ana%40example.com?"), "{uri}");
        assert!(uri.contains(&format!("secret={s}")));
        assert!(qr.starts_with("data:image/png;base64,iVBOR"));
    }
}
