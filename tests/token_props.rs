//! Property tests of the token format: generation round-trips through parsing, and any
//! single-character change, truncation or extension is refused.

use proptest::prelude::*;
use tokengate::token::TokenKind;
use tokengate::token::{BODY_LEN, ID_LEN, TokenFormat};

fn prefix() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{1,9}"
}

fn kind() -> impl Strategy<Value = TokenKind> {
    prop_oneof![Just(TokenKind::Personal), Just(TokenKind::Organization)]
}

fn format() -> impl Strategy<Value = TokenFormat> {
    (prefix(), prefix())
        .prop_filter("prefixes differ", |(p, o)| p != o)
        .prop_map(|(p, o)| TokenFormat::new(&p, &o).expect("valid prefixes"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn generate_then_parse_round_trips(format in format(), kind in kind()) {
        let (id, token) = format.generate(kind);
        let s = token.expose();
        prop_assert_eq!(s.len(), format.prefix(kind).len() + 1 + BODY_LEN);
        let parsed = format.parse(s).unwrap();
        prop_assert_eq!(parsed.id, id);
        prop_assert_eq!(parsed.kind, kind);
        prop_assert_eq!(parsed.raw(), s);
        let display = format.display(kind, &id);
        prop_assert!(s.starts_with(display.trim_end_matches("...")));
        prop_assert_eq!(display.len(), format.prefix(kind).len() + 1 + 8 + 3);
    }

    #[test]
    fn every_single_character_substitution_is_rejected(
        format in format(),
        kind in kind(),
        pos in any::<prop::sample::Index>(),
        replacement in any::<char>(),
    ) {
        let (_, token) = format.generate(kind);
        let original: Vec<char> = token.expose().chars().collect();
        let i = pos.index(original.len());
        prop_assume!(original[i] != replacement);
        let mut changed = original.clone();
        changed[i] = replacement;
        let changed: String = changed.into_iter().collect();
        prop_assert!(format.parse(&changed).is_err(), "accepted {:?} (position {})", changed, i);
    }

    #[test]
    fn truncation_and_extension_are_rejected(format in format(), kind in kind(), cut in 1usize..60, extra in "[0-9A-Za-z]{1,8}") {
        let (_, token) = format.generate(kind);
        let s = token.expose();
        prop_assert!(format.parse(&s[..s.len() - cut.min(s.len())]).is_err());
        let extended = format!("{s}{extra}");
        prop_assert!(format.parse(&extended).is_err());
    }

    #[test]
    fn arbitrary_input_never_panics_and_is_refused(s in ".{0,80}") {
        let format = TokenFormat::default();
        // Random strings essentially never carry a valid CRC32; parsing must simply say no.
        prop_assert!(format.parse(&s).is_err());
    }

    #[test]
    fn ids_are_twelve_base62_characters(kind in kind()) {
        let (id, _) = TokenFormat::default().generate(kind);
        prop_assert_eq!(id.as_str().len(), ID_LEN);
        prop_assert!(id.as_str().bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}

#[test]
fn substitution_is_rejected_exhaustively_for_one_token() {
    // Complements the random cases: every position times every base62 character.
    let format = TokenFormat::default();
    let (_, token) = format.generate(TokenKind::Personal);
    let s = token.expose().as_bytes().to_vec();
    let alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut tried = 0;
    for i in 0..s.len() {
        for &c in alphabet {
            if s[i] != c {
                let mut t = s.clone();
                t[i] = c;
                assert!(format.parse(std::str::from_utf8(&t).unwrap()).is_err(), "position {i} -> {}", c as char);
                tried += 1;
            }
        }
    }
    assert!(tried > 3_000);
}

#[test]
fn secrets_are_not_biased_towards_low_characters() {
    // Rejection sampling makes every base62 character equally likely. Over 2,000 tokens
    // (80,000 secret characters, ~1,290 per character) a modulo bias would over-represent the
    // first 8 characters by ~25%; allow ±15% of the mean.
    let format = TokenFormat::default();
    let mut counts = [0usize; 128];
    for _ in 0..2_000 {
        let (_, t) = format.generate(TokenKind::Personal);
        for b in t.expose().as_bytes()[4 + ID_LEN..4 + ID_LEN + 40].iter() {
            counts[*b as usize] += 1;
        }
    }
    let used: Vec<usize> = counts.iter().copied().filter(|&c| c > 0).collect();
    assert_eq!(used.len(), 62);
    let mean = used.iter().sum::<usize>() as f64 / 62.0;
    for c in used {
        assert!((c as f64 - mean).abs() < mean * 0.15, "count {c} vs mean {mean}");
    }
}
