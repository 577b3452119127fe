//! Tokens of a condition, with 1-based character positions.

use super::RuleError;

/// A token's kind.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Num(f64),
    Ident,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
    Not,
    Eof,
}

/// A token: kind, 1-based character position and the text as written.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub tok: Tok,
    pub pos: usize,
    pub text: String,
}

impl Token {
    /// How an error message shows it: `'AND'`, or `the end of the condition`.
    pub fn describe(&self) -> String {
        if self.tok == Tok::Eof { "the end of the condition".to_string() } else { format!("'{}'", self.text) }
    }
}

/// Splits `text` into tokens ending with [`Tok::Eof`]. The caller has checked the length.
pub(super) fn lex(text: &str) -> Result<Vec<Token>, RuleError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let tok = if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            i = scan_number(&chars, i);
            let s: String = chars[start..i].iter().collect();
            match s.parse::<f64>() {
                Ok(v) if v.is_finite() => Tok::Num(v),
                _ => return Err(RuleError::BadNumber { text: s, pos }),
            }
        } else if c.is_ascii_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            match word.to_ascii_uppercase().as_str() {
                "AND" => Tok::And,
                "OR" => Tok::Or,
                "NOT" => Tok::Not,
                _ => Tok::Ident,
            }
        } else {
            let next = chars.get(i + 1).copied();
            let (tok, len) = match (c, next) {
                ('(', _) => (Tok::LParen, 1),
                (')', _) => (Tok::RParen, 1),
                ('[', _) => (Tok::LBracket, 1),
                (']', _) => (Tok::RBracket, 1),
                (',', _) => (Tok::Comma, 1),
                ('+', _) => (Tok::Plus, 1),
                ('-', _) => (Tok::Minus, 1),
                ('*', _) => (Tok::Star, 1),
                ('/', _) => (Tok::Slash, 1),
                ('<', Some('=')) => (Tok::Le, 2),
                ('<', Some('>')) => (Tok::Ne, 2),
                ('<', _) => (Tok::Lt, 1),
                ('>', Some('=')) => (Tok::Ge, 2),
                ('>', _) => (Tok::Gt, 1),
                ('=', Some('=')) => (Tok::Eq, 2),
                ('=', _) => (Tok::Eq, 1),
                ('!', Some('=')) => (Tok::Ne, 2),
                ('!', _) => (Tok::Not, 1),
                ('&', Some('&')) => (Tok::And, 2),
                ('|', Some('|')) => (Tok::Or, 2),
                _ => return Err(RuleError::UnexpectedChar { ch: c, pos }),
            };
            i += len;
            tok
        };
        out.push(Token { tok, pos, text: chars[start..i].iter().collect() });
    }
    out.push(Token { tok: Tok::Eof, pos: chars.len() + 1, text: String::new() });
    Ok(out)
}

/// End of the number starting at `i`: digits, an optional fraction, an optional exponent (only when digits
/// follow it, so `2e` is the number 2 and the name `e`).
fn scan_number(chars: &[char], mut i: usize) -> usize {
    let digits = |mut i: usize| {
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    i = digits(i);
    if chars.get(i) == Some(&'.') {
        i = digits(i + 1);
    }
    if matches!(chars.get(i), Some('e' | 'E')) {
        let mut j = i + 1;
        if matches!(chars.get(j), Some('+' | '-')) {
            j += 1;
        }
        if chars.get(j).is_some_and(char::is_ascii_digit) {
            i = digits(j);
        }
    }
    i
}
