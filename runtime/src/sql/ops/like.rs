//! LIKE / ILIKE matching over Unicode characters.
//!
//! Iterative two-pointer matching that backtracks only to the most recent
//! `%`: O(len(s) * len(pattern)) in the worst case, never exponential.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// `%`: any sequence, possibly empty.
    Any,
    /// `_`: exactly one character.
    One,
    Lit(char),
}

/// `s LIKE pattern` with `%` and `_`, an optional escape character (which
/// makes the next character literal; an escape at the very end matches
/// itself), case sensitive unless `case_insensitive` (ILIKE, comparing
/// Unicode lower case).
pub fn like(s: &str, pattern: &str, escape: Option<char>, case_insensitive: bool) -> bool {
    let tokens = tokenize(pattern, escape, case_insensitive);
    let chars: Vec<char> = if case_insensitive {
        s.chars().flat_map(char::to_lowercase).collect()
    } else {
        s.chars().collect()
    };
    matches(&chars, &tokens)
}

fn tokenize(pattern: &str, escape: Option<char>, fold: bool) -> Vec<Token> {
    let mut out = Vec::with_capacity(pattern.len());
    let mut it = pattern.chars();
    let push_lit = |c: char, out: &mut Vec<Token>| {
        if fold {
            out.extend(c.to_lowercase().map(Token::Lit));
        } else {
            out.push(Token::Lit(c));
        }
    };
    while let Some(c) = it.next() {
        if Some(c) == escape {
            let lit = it.next().unwrap_or(c);
            push_lit(lit, &mut out);
        } else if c == '%' {
            // Runs of % are one wildcard.
            if out.last() != Some(&Token::Any) {
                out.push(Token::Any);
            }
        } else if c == '_' {
            out.push(Token::One);
        } else {
            push_lit(c, &mut out);
        }
    }
    out
}

fn matches(s: &[char], p: &[Token]) -> bool {
    let (mut si, mut pi) = (0usize, 0usize);
    // Position of the last % seen and the string index it is retried from.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(Token::One) => {
                si += 1;
                pi += 1;
                continue;
            }
            Some(Token::Lit(c)) if *c == s[si] => {
                si += 1;
                pi += 1;
                continue;
            }
            Some(Token::Any) => {
                star = Some((pi, si));
                pi += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, mark)) => {
                star = Some((sp, mark + 1));
                pi = sp + 1;
                si = mark + 1;
            }
            None => return false,
        }
    }
    p[pi.min(p.len())..].iter().all(|t| *t == Token::Any)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(like("hello", "hello", None, false));
        assert!(!like("hello", "hell", None, false));
        assert!(like("hello", "h%", None, false));
        assert!(like("hello", "%llo", None, false));
        assert!(like("hello", "%l%", None, false));
        assert!(like("hello", "h_llo", None, false));
        assert!(!like("hello", "h_lo", None, false));
        assert!(like("", "%", None, false));
        assert!(!like("", "_", None, false));
        assert!(like("", "", None, false));
        assert!(!like("a", "", None, false));
        assert!(like("abcbc", "%bc", None, false));
        assert!(like("mississippi", "m%iss%pi", None, false));
        assert!(!like("mississippi", "m%iss%pix", None, false));
        assert!(like("aXb", "a%%b", None, false));
    }

    #[test]
    fn case_and_unicode() {
        assert!(!like("Hello", "hello", None, false));
        assert!(like("Hello", "hELLO", None, true));
        assert!(like("ÉCOLE", "é%", None, true));
        assert!(like("日本語", "日_語", None, false));
        assert!(!like("日本語", "日__語", None, false));
        assert!(like("naïve", "na_ve", None, false));
    }

    #[test]
    fn escapes() {
        assert!(like("50%", "50!%", Some('!'), false));
        assert!(!like("500", "50!%", Some('!'), false));
        assert!(like("a_b", "a\\_b", Some('\\'), false));
        assert!(!like("axb", "a\\_b", Some('\\'), false));
        assert!(like("a!", "a!!", Some('!'), false));
        // A trailing escape matches itself.
        assert!(like("ab!", "ab!", Some('!'), false));
        assert!(!like("ab", "ab!", Some('!'), false));
        // Without an escape character, a backslash is literal.
        assert!(like("a\\b", "a\\b", None, false));
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let s = "a".repeat(20_000);
        assert!(!like(&s, "%a%a%a%a%a%a%b", None, false));
        assert!(like(&s, "%a%a%a%a%a%a%a", None, false));
        let mut t = s.clone();
        t.push('b');
        assert!(like(&t, "%a%a%a%a%a%a%b", None, true));
    }
}
