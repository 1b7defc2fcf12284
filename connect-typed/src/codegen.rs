//! Building blocks of the request decoders that `connect-build` generates for batch-shaped messages.
//!
//! buffa's view decoder grows each repeated field one push at a time: a request of 50 records, each
//! with a map and a list, reallocates the record list five times (copying every record decoded so
//! far) and each record's map twice. A generated decoder does the same decode with the final
//! capacities allocated up front:
//!
//! - the request's own repeated fields get the number of their occurrences, counted in one pass
//!   over the top-level fields (a tag and a length each, nothing decoded);
//! - the repeated fields inside the elements of a repeated message field get the length the same
//!   field had in the previous element (records of a batch tend to look alike), never more than
//!   the element's bytes could hold.
//!
//! Every other field, every check and every limit stay buffa's: the decoder hands each field it does
//! not presize to the view's own `merge_view_field`, decodes elements with `merge_into_view`, and
//! runs under the same recursion, unknown-field and element-memory budgets as
//! [`MessageView::decode_view`](buffa::MessageView::decode_view). The capacity it reserves
//! ahead of the decode comes out of a budget of its own, as large as buffa's element-memory
//! budget, so a hostile message cannot make it reserve more than buffa would let it decode.

use std::cell::Cell;

use buffa::encoding::{skip_field_depth, Tag};
use buffa::{DecodeContext, DecodeError};

/// The budgets of one top-level decode, as buffa's own view decoder sets them up, plus the budget
/// of capacity reserved ahead of the decode.
#[derive(Debug)]
pub struct Budget {
    unknown_fields: Cell<usize>,
    element_memory: Cell<usize>,
    reserve: Cell<usize>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new()
    }
}

impl Budget {
    /// buffa's defaults: [`buffa::DEFAULT_UNKNOWN_FIELD_LIMIT`] unknown fields and
    /// [`buffa::DEFAULT_ELEMENT_MEMORY_LIMIT`] bytes of elements, and as many bytes of reserved
    /// capacity.
    pub fn new() -> Self {
        Budget {
            unknown_fields: Cell::new(buffa::DEFAULT_UNKNOWN_FIELD_LIMIT),
            element_memory: Cell::new(buffa::DEFAULT_ELEMENT_MEMORY_LIMIT),
            reserve: Cell::new(buffa::DEFAULT_ELEMENT_MEMORY_LIMIT),
        }
    }

    /// The decode context of the top-level message ([`buffa::RECURSION_LIMIT`] levels deep).
    pub fn context(&self) -> DecodeContext<'_> {
        DecodeContext::new(buffa::RECURSION_LIMIT, &self.unknown_fields)
            .with_element_memory(&self.element_memory)
    }

    /// An empty vector with room for `wanted` elements, or for fewer once the reserve budget runs
    /// low (none when it is spent): the decode then grows it as buffa's would.
    pub fn vec<T>(&self, wanted: usize) -> Vec<T> {
        let size = std::mem::size_of::<T>();
        if wanted == 0 || size == 0 {
            return Vec::new();
        }
        let left = self.reserve.get();
        let n = wanted.min(left / size);
        self.reserve.set(left - n * size);
        Vec::with_capacity(n)
    }
}

/// How many times each of `fields` occurs among the top-level fields of `buf`. Malformed input ends
/// the count where it starts (the decode that follows reports it).
pub fn count_fields<const N: usize>(buf: &[u8], fields: [u32; N]) -> [usize; N] {
    let mut counts = [0; N];
    let mut cur = buf;
    while !cur.is_empty() {
        let Ok(tag) = Tag::decode(&mut cur) else {
            break;
        };
        let number = tag.field_number();
        if let Some(i) = fields.iter().position(|&f| f == number) {
            counts[i] += 1;
        }
        if skip_field_depth(tag, &mut cur, buffa::RECURSION_LIMIT).is_err() {
            break;
        }
    }
    counts
}

/// The capacity to give a repeated field of an element whose encoding is `element_len` bytes long,
/// when the same field had `previous` entries in the element before: each entry takes at least two
/// bytes on the wire.
pub fn hint(previous: usize, element_len: usize) -> usize {
    previous.min(element_len / 2)
}

/// Decodes one element of a repeated message field whose tag was just read from `cur` (with the
/// length-delimited wire type), exactly as buffa's field arm does: one level deeper, its payload
/// borrowed from `cur`, its slot charged to the element-memory budget, then `decode` on the payload.
pub fn element<'a, V>(
    cur: &mut &'a [u8],
    ctx: DecodeContext<'_>,
    decode: impl FnOnce(&'a [u8], DecodeContext<'_>) -> Result<V, DecodeError>,
) -> Result<V, DecodeError> {
    let sub_ctx = ctx.descend()?;
    let payload = buffa::types::borrow_bytes(cur)?;
    ctx.register_element_memory(std::mem::size_of::<V>())?;
    decode(payload, sub_ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_top_level_fields_and_stops_at_malformed_input() {
        // field 1 (LEN "ab"), field 2 (varint 5), field 1 (LEN ""), field 3 (fixed32)
        let buf = [0x0a, 2, b'a', b'b', 0x10, 5, 0x0a, 0, 0x1d, 1, 2, 3, 4];
        assert_eq!(count_fields(&buf, [1, 2, 3, 4]), [2, 1, 1, 0]);
        // a length running past the end: the field before it is counted, the rest is not
        let truncated = [0x0a, 0, 0x0a, 9, b'x'];
        assert_eq!(count_fields(&truncated, [1]), [2]);
        let bad_tag = [
            0x0a, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        assert_eq!(count_fields(&bad_tag, [1]), [1]);
    }

    #[test]
    fn reserved_capacity_is_bounded_by_the_budget() {
        let budget = Budget::new();
        let huge: Vec<[u8; 1024]> = budget.vec(usize::MAX / 2048);
        assert_eq!(
            huge.capacity(),
            buffa::DEFAULT_ELEMENT_MEMORY_LIMIT / 1024,
            "the first reservation takes the whole budget"
        );
        let none: Vec<u64> = budget.vec(10);
        assert_eq!(none.capacity(), 0, "a spent budget reserves nothing");
        let zst: Vec<()> = Budget::new().vec(5);
        assert!(zst.is_empty());
    }

    #[test]
    fn hints_never_exceed_what_the_element_can_hold() {
        assert_eq!(hint(5, 300), 5);
        assert_eq!(hint(10_000, 8), 4);
        assert_eq!(hint(3, 0), 0);
    }

    #[test]
    fn elements_are_charged_and_descend() {
        let budget = Budget::new();
        let ctx = budget.context();
        let mut cur: &[u8] = &[3, 1, 2, 3, 9];
        let got = element(&mut cur, ctx, |payload, sub| {
            assert_eq!(sub.depth(), buffa::RECURSION_LIMIT - 1);
            Ok::<_, DecodeError>(payload.to_vec())
        })
        .unwrap();
        assert_eq!(got, [1, 2, 3]);
        assert_eq!(cur, [9]);
        assert_eq!(
            ctx.remaining_element_memory(),
            Some(buffa::DEFAULT_ELEMENT_MEMORY_LIMIT - std::mem::size_of::<Vec<u8>>())
        );
        let mut short: &[u8] = &[5, 1];
        assert!(element(&mut short, ctx, |p, _| Ok::<_, DecodeError>(p.len())).is_err());
    }
}
