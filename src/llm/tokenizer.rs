//! The simulated model's tokenizer, as `/tokenize` and `/detokenize` show
//! it. It has no real vocabulary; its ids are defined so that a client can
//! check its counts against the server's:
//!
//! - text is cut into pieces of four characters (the last one shorter):
//!   one token per piece, so `count` is exactly the prompt tokens `usage`
//!   bills ([`approximate_tokens`]);
//! - the model's 32 output words (`" the"`, `" stream"`, ...) are ids 0-31,
//!   whether they come out of the model or appear as a piece of a prompt;
//! - any other piece is a stable hash of its text at or above
//!   [`FIRST_PROMPT_ID`] (the same text gives the same ids in every process
//!   and release).
//!
//! `/detokenize` maps the output words' ids back to text; a prompt piece's
//! id cannot be (a hash does not invert), and is refused.

use super::model::{approximate_tokens, token, WORDS};

/// The first id of a prompt piece (ids below it are the output words).
pub const FIRST_PROMPT_ID: u32 = WORDS.len() as u32;

/// Ids past the last one any piece gets (prompt pieces hash into
/// `FIRST_PROMPT_ID..VOCABULARY`).
pub const VOCABULARY: u32 = 1 << 31;

/// The ids of `text`, a token per four characters.
pub fn encode(text: &str) -> Vec<u32> {
    encode_pieces(text).into_iter().map(|(id, _)| id).collect()
}

/// Each token of `text`: its id and its piece of the text.
pub fn encode_pieces(text: &str) -> Vec<(u32, &str)> {
    let mut pieces = Vec::with_capacity(approximate_tokens(text) as usize);
    let mut start = 0;
    let mut chars = 0;
    for (at, _) in text.char_indices() {
        if chars == 4 {
            pieces.push((id(&text[start..at]), &text[start..at]));
            start = at;
            chars = 0;
        }
        chars += 1;
    }
    if chars > 0 {
        pieces.push((id(&text[start..]), &text[start..]));
    }
    pieces
}

/// Calls `f` with the id of each token of `text`, in order, without
/// collecting them (the KV cache hashes a prompt's blocks this way).
pub fn each_id(text: &str, mut f: impl FnMut(u32)) {
    let mut start = 0;
    let mut chars = 0;
    for (at, _) in text.char_indices() {
        if chars == 4 {
            f(id(&text[start..at]));
            start = at;
            chars = 0;
        }
        chars += 1;
    }
    if chars > 0 {
        f(id(&text[start..]));
    }
}

/// One piece's id: an output word's index, else its hash.
fn id(piece: &str) -> u32 {
    if let Some(word) = piece
        .strip_prefix(' ')
        .and_then(|w| WORDS.iter().position(|x| *x == w))
    {
        return word as u32;
    }
    // FNV-1a, 64 bits: stable across processes and releases.
    let hash = piece.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    FIRST_PROMPT_ID + (hash % u64::from(VOCABULARY - FIRST_PROMPT_ID)) as u32
}

/// The text of `ids`, or the first id that is not an output word.
pub fn decode(ids: &[u32]) -> Result<String, u32> {
    ids.iter()
        .map(|&i| {
            if i < FIRST_PROMPT_ID {
                Ok(token(u64::from(i)))
            } else {
                Err(i)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_per_four_characters_as_usage_counts_them() {
        for text in [
            "",
            "a",
            "abcd",
            "abcde",
            "héllo wörld, ünïcode",
            "the stream of tokens",
        ] {
            assert_eq!(
                encode(text).len() as u64,
                approximate_tokens(text),
                "{text:?}"
            );
        }
        assert_eq!(
            encode("abcdefgh")[0],
            encode("abcdxxxx")[0],
            "same piece, same id"
        );
        assert_ne!(encode("abcdefgh")[0], encode("abcdefgh")[1]);
    }

    #[test]
    fn output_words_are_ids_0_to_31_and_map_back() {
        let text = crate::llm::model::text(0..40);
        // " the stream of" ... every output token is its own id.
        let ids: Vec<u32> = (0..40u64).map(|i| (i % 32) as u32).collect();
        assert_eq!(decode(&ids), Ok(text));
        // A prompt piece that is an output word gets the word's id.
        assert_eq!(encode(" the"), [0]);
        assert_eq!(encode(" see"), [31]);
        // Other pieces hash at or above 32 and cannot be decoded.
        let piece = encode("zzzz")[0];
        assert!((FIRST_PROMPT_ID..VOCABULARY).contains(&piece));
        assert_eq!(decode(&[0, piece, 1]), Err(piece));
        // Stable: the same in every process.
        assert_eq!(encode("zzzz")[0], piece);
    }
}
