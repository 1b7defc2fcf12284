//! The request decoder connect-build generates for batch-shaped messages decodes exactly what
//! buffa's view decoder decodes and rejects what it rejects: random batches, then random damage to
//! them, each served through the generated server and compared with `OwnedView::decode`.

use buffa::Message;
use bytes::Bytes;
use connect_build_tests::proto::acme::batch::v1::__buffa::oneof::record::Origin;
use connect_build_tests::proto::acme::batch::v1::{
    batch_service_methods, Batch, Odd, Record, Span,
};
use connect_build_tests::view_decoder::{buffa_decode, compare, serve};
use connect_typed::Code;
use proptest::prelude::*;

fn check(bytes: Bytes) -> Result<(), TestCaseError> {
    compare(&bytes).map_err(TestCaseError::fail)
}

fn text() -> impl Strategy<Value = String> {
    "[a-z0-9 .é]{0,12}"
}

fn span() -> impl Strategy<Value = Span> {
    (text(), prop::collection::vec(text(), 0..4)).prop_map(|(name, events)| Span {
        name,
        events,
        ..Default::default()
    })
}

fn record() -> impl Strategy<Value = Record> {
    (
        any::<i64>(),
        text(),
        prop::collection::hash_map(text(), text(), 0..6),
        prop::collection::vec(text(), 0..5),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..6), 0..3),
        prop::collection::vec(span(), 0..3),
        prop::option::of(span()),
        prop::option::of(text()),
        prop::option::of(prop_oneof![
            text().prop_map(Origin::Host),
            span().prop_map(|s| Origin::Via(Box::new(s)))
        ]),
    )
        .prop_map(
            |(at, text, labels, tags, blobs, spans, parent, note, origin)| Record {
                at,
                text,
                labels: labels.into_iter().collect(),
                tags,
                blobs,
                spans,
                parent: parent.into(),
                note,
                origin,
                ..Default::default()
            },
        )
}

fn batch() -> impl Strategy<Value = Batch> {
    (
        prop::collection::vec(record(), 0..8),
        prop::collection::vec(text(), 0..4),
        prop::collection::hash_map(text(), record(), 0..3),
        prop::collection::vec((text(), prop::collection::vec(text(), 0..3)), 0..3),
        text(),
        prop::collection::vec(any::<i32>(), 0..5),
    )
        .prop_map(|(records, sources, by_key, odds, name, counts)| Batch {
            records,
            sources,
            by_key: by_key.into_iter().collect(),
            odds: odds
                .into_iter()
                .map(|(display_name, items)| Odd {
                    displayName: display_name,
                    items,
                    ..Default::default()
                })
                .collect(),
            name,
            counts,
            ..Default::default()
        })
}

/// Damage to an encoded message: a byte changed, bytes cut or inserted.
#[derive(Clone, Debug)]
enum Damage {
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Vec<Damage>> {
    prop::collection::vec(
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::Set(i, b)),
            any::<usize>().prop_map(Damage::Truncate),
            (any::<usize>(), prop::collection::vec(any::<u8>(), 1..4))
                .prop_map(|(i, b)| Damage::Insert(i, b)),
        ],
        1..4,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn valid_batches_decode_as_buffa_decodes_them(batch in batch()) {
        let bytes = Bytes::from(batch.encode_to_vec());
        let decoded = buffa_decode(&bytes);
        prop_assert_eq!(decoded.as_ref(), Ok(&batch));
        check(bytes)?;
    }

    #[test]
    fn damaged_batches_decode_or_fail_as_buffa_does(batch in batch(), damage in damage()) {
        let mut bytes = batch.encode_to_vec();
        for d in damage {
            let at = |i: usize| if bytes.is_empty() { 0 } else { i % (bytes.len() + 1) };
            match d {
                Damage::Set(i, b) if !bytes.is_empty() => {
                    let i = i % bytes.len();
                    bytes[i] = b;
                }
                Damage::Set(..) => {}
                Damage::Truncate(i) => bytes.truncate(at(i)),
                Damage::Insert(i, b) => {
                    let i = at(i);
                    bytes.splice(i..i, b);
                }
            }
        }
        check(Bytes::from(bytes))?;
    }
}

/// A batch whose first record holds many tags and whose next records are empty: each empty record
/// gets room for as many tags as its two bytes could hold (none), not the first record's count.
#[test]
fn a_large_first_element_does_not_size_the_next_ones() {
    let mut batch = Batch {
        records: vec![Record {
            tags: vec!["t".to_owned(); 10_000],
            ..Default::default()
        }],
        ..Default::default()
    };
    batch.records.extend((0..10_000).map(|_| Record::default()));
    let bytes = Bytes::from(batch.encode_to_vec());
    assert_eq!(serve(batch_service_methods::INGEST, vec![bytes]), Ok(batch));
}

/// Wire-type errors and the recursion limit stay buffa's.
#[test]
fn recursion_and_wire_type_errors_match_buffa() {
    // field 1 (records) with the varint wire type
    let wrong_wire_type = Bytes::from_static(&[0x08, 0x01]);
    assert!(buffa_decode(&wrong_wire_type).is_err());
    assert_eq!(
        serve(batch_service_methods::INGEST, vec![wrong_wire_type]).map_err(|s| s.code()),
        Err(Code::INVALID_ARGUMENT)
    );
    // Unknown groups (field 15) nested deeper than the recursion limit, at the top level and
    // inside a record: both fail, as they do for buffa.
    let deep = vec![0x7b; 150];
    assert!(buffa_decode(&Bytes::from(deep.clone())).is_err());
    check(Bytes::from(deep.clone())).unwrap();
    let mut in_record = vec![0x0a, 150, 1];
    in_record.extend(&deep);
    assert!(buffa_decode(&Bytes::from(in_record.clone())).is_err());
    check(Bytes::from(in_record)).unwrap();
}

/// The `view_decoder` fuzz target's inputs kept in `fuzz/regressions/view_decoder/`, through the
/// same comparison the target runs (the other targets' are replayed by connect-proto's
/// `tests/fuzz_inputs.rs`).
#[test]
fn fuzz_regressions_stay_fixed() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/view_decoder");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions/view_decoder") {
        let path = entry.expect("directory entry").path();
        let input = std::fs::read(&path).expect("read an input");
        if let Err(why) = compare(&input) {
            panic!("{}: {why}", path.display());
        }
        replayed += 1;
    }
    assert!(replayed > 0, "no inputs in {}", dir.display());
}
