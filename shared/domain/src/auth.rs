//! Account rules: the password policy (with the original's exact messages), e-mail normalisation and
//! validation, field limits, and the shape of a TOTP code. Pure functions, no I/O.

/// Characters the password policy counts as "special" (the original's set).
pub const SPECIAL_CHARS: &str = "!@#$%^&*()_+-=[]{}|;:,.<>?";
pub const PASSWORD_MIN_CHARS: usize = 8;
pub const PASSWORD_MAX_CHARS: usize = 128;
/// Longest password accepted at all (login included), in bytes: bounds the hashing input.
pub const PASSWORD_MAX_BYTES: usize = 1024;
/// RFC 5321 limits.
pub const EMAIL_MAX_LEN: usize = 254;
pub const EMAIL_LOCAL_MAX_LEN: usize = 64;
pub const FULL_NAME_MAX_CHARS: usize = 100;
pub const TOTP_CODE_LEN: usize = 6;

/// The password policy (register, reset): `Err` carries the original's message, answered with 400.
pub fn check_password_policy(password: &str) -> Result<(), &'static str> {
    let n = password.chars().count();
    if n < PASSWORD_MIN_CHARS {
        return Err("Password must be at least 8 characters long");
    }
    if n > PASSWORD_MAX_CHARS {
        return Err("Password must be less than 128 characters");
    }
    if !password.chars().any(|c| c.is_uppercase()) {
        return Err("Password must contain at least one uppercase letter");
    }
    if !password.chars().any(|c| c.is_lowercase()) {
        return Err("Password must contain at least one lowercase letter");
    }
    if !password.chars().any(|c| c.is_ascii_digit()) {
        return Err("Password must contain at least one digit");
    }
    if !password.chars().any(|c| SPECIAL_CHARS.contains(c)) {
        return Err("Password must contain at least one special character (!@#$%^&*()_+-=[]{}|;:,.<>?)");
    }
    Ok(())
}

/// Why an e-mail address was refused (the text follows the framework's "value is not a valid email
/// address: ..." style).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("value is not a valid email address: {0}")]
pub struct InvalidEmail(pub &'static str);

/// Validates an address and returns its normalised form: trimmed and lower-cased as a whole (the
/// original lower-cased only the domain and matched case-sensitively, so `Ana@x.io` and `ana@x.io`
/// were two accounts; here they are one). The normalised form is the account's identity.
pub fn normalize_email(raw: &str) -> Result<String, InvalidEmail> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(InvalidEmail("An email address must have an @-sign."));
    }
    if s.len() > EMAIL_MAX_LEN {
        return Err(InvalidEmail("The email address is too long."));
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return Err(InvalidEmail("An email address must have an @-sign."));
    };
    if local.is_empty() {
        return Err(InvalidEmail("There must be something before the @-sign."));
    }
    if local.len() > EMAIL_LOCAL_MAX_LEN {
        return Err(InvalidEmail("The email address is too long before the @-sign."));
    }
    const LOCAL_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~.";
    if !local.chars().all(|c| c.is_ascii_alphanumeric() || LOCAL_SPECIALS.contains(c))
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return Err(InvalidEmail("The part before the @-sign is not valid."));
    }
    if domain.is_empty() {
        return Err(InvalidEmail("There must be something after the @-sign."));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(InvalidEmail("The part after the @-sign is not valid. It should have a period."));
    }
    for label in &labels {
        if label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(InvalidEmail("The part after the @-sign is not valid."));
        }
    }
    if labels.last().is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit())) {
        return Err(InvalidEmail("The part after the @-sign is not valid."));
    }
    Ok(s.to_ascii_lowercase())
}

/// A display name: trimmed, at most 100 characters, no control characters. Empty means "no name".
pub fn normalize_full_name(raw: &str) -> Result<Option<String>, &'static str> {
    let s = raw.trim();
    if s.chars().count() > FULL_NAME_MAX_CHARS {
        return Err("String should have at most 100 characters");
    }
    if s.chars().any(char::is_control) {
        return Err("Name must not contain control characters");
    }
    Ok(if s.is_empty() { None } else { Some(s.to_owned()) })
}

/// The shape the original's request models required for a TOTP code: exactly six characters
/// (422 otherwise). Whether they are digits is checked with the code itself.
pub fn totp_code_has_valid_length(code: &str) -> bool {
    code.chars().count() == TOTP_CODE_LEN
}

/// Six ASCII digits.
pub fn totp_code_is_well_formed(code: &str) -> bool {
    code.len() == TOTP_CODE_LEN && code.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_policy_messages_are_the_originals() {
        let cases = [
            ("Ab1!", "Password must be at least 8 characters long"),
            ("abcdefg1!", "Password must contain at least one uppercase letter"),
            ("ABCDEFG1!", "Password must contain at least one lowercase letter"),
            ("Abcdefgh!", "Password must contain at least one digit"),
            ("Abcdefgh1", "Password must contain at least one special character (!@#$%^&*()_+-=[]{}|;:,.<>?)"),
        ];
        for (pw, msg) in cases {
            assert_eq!(check_password_policy(pw), Err(msg), "{pw}");
        }
        let long = format!("Aa1!{}", "x".repeat(125));
        assert_eq!(check_password_policy(&long), Err("Password must be less than 128 characters"));
        assert_eq!(check_password_policy(&format!("Aa1!{}", "x".repeat(124))), Ok(()));
        assert_eq!(check_password_policy("Str0ng!pass"), Ok(()));
    }

    #[test]
    fn emails_are_normalised_and_bounded() {
        assert_eq!(normalize_email("  Ana.B@Example.COM ").unwrap(), "ana.b@example.com");
        assert_eq!(normalize_email("a+tag@sub.example.io").unwrap(), "a+tag@sub.example.io");
        for bad in [
            "",
            "plain",
            "@x.io",
            "a@",
            "a@localhost",
            "a@x..io",
            "a@-x.io",
            "a b@x.io",
            ".a@x.io",
            "a..b@x.io",
            "a@x.123",
            "a@x.io\n",
            "a\"b@x.io",
        ] {
            assert!(normalize_email(bad).is_err() || bad.trim() != bad, "{bad:?}");
        }
        assert!(normalize_email(&format!("{}@x.io", "a".repeat(65))).is_err());
        assert!(normalize_email(&format!("a@{}.io", "b".repeat(250))).is_err());
    }

    #[test]
    fn names_and_codes_have_limits() {
        assert_eq!(normalize_full_name("  Ana  ").unwrap(), Some("Ana".into()));
        assert_eq!(normalize_full_name("   ").unwrap(), None);
        assert!(normalize_full_name(&"é".repeat(100)).is_ok());
        assert!(normalize_full_name(&"é".repeat(101)).is_err());
        assert!(normalize_full_name("a\u{0}b").is_err());
        assert!(totp_code_has_valid_length("12345a"));
        assert!(!totp_code_is_well_formed("12345a"));
        assert!(totp_code_is_well_formed("012345"));
        assert!(!totp_code_has_valid_length("1234567"));
    }
}
