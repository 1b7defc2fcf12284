//! The fuzz targets' inputs on stable: the seeds every fuzz run starts from, written from real
//! exchanges of the in-memory pair, and the crash inputs kept in `fuzz/regressions/<target>/`, all
//! run through `connect_proto::fuzzing::run`, the very code the targets call.
//!
//! `fuzz/run.sh` runs this file with `CONNECT_FUZZ_CORPUS_DIR` set, which also writes the seeds to
//! `fuzz/corpus/<target>/`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;

use bytes::Bytes;
use connect_proto::fuzzing::{
    run, ClientOp, ClientScript, PairScript, ServerOp, ServerScript, TARGETS,
};
use connect_proto::testing::Wire;
use connect_proto::{
    decode_binary_header, envelope_flags as flags, wire, CompressionRegistry, EnvelopeDecoder,
    StreamType,
};
use http::{HeaderMap, Method, StatusCode};

/// Every name's values, as the scripts write headers.
fn header_pairs(map: &HeaderMap) -> Vec<(Vec<u8>, Vec<u8>)> {
    map.iter()
        .map(|(n, v)| (n.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// The message encoding a head names, whichever protocol's header it is in.
fn encoding(headers: &HeaderMap) -> Option<String> {
    [
        "content-encoding",
        "connect-content-encoding",
        "grpc-encoding",
    ]
    .iter()
    .find_map(|n| headers.get(*n)?.to_str().ok().map(str::to_owned))
}

type Corpora = std::collections::BTreeMap<&'static str, std::collections::BTreeSet<Vec<u8>>>;

/// Seed inputs for every target, taken from real exchanges of the client↔server pair: every protocol,
/// stream type, codec and compression, succeeding and failing, some with Connect GET and re-chunked
/// bodies. The machine targets get the exchanges replayed as scripts; the parser targets get the wire
/// forms found in them (envelopes, trailer blocks, EndStream and error bodies, header values, queries,
/// compressed payloads).
fn seed_corpora() -> Corpora {
    let mut seeds: Corpora = TARGETS.iter().map(|t| (*t, Default::default())).collect();
    let text = |n: usize| format!("{{\"n\":{n},\"text\":\"{}\"}}", "lorem ipsum ".repeat(12));
    for (protocol, method, codec, compression) in (0..3u8).flat_map(|p| {
        // Every compression but the last, which nobody supports.
        (0..4u8).flat_map(move |m| (0..2u8).flat_map(move |c| (0..6u8).map(move |z| (p, m, c, z))))
    }) {
        for (variant, code) in [(0u8, 0u32), (1, 9), (2, 0)] {
            // Variant 2: Connect GET where it applies, else small chunks and no timeout.
            let get = variant == 2 && protocol == 0 && method == 0;
            let script = PairScript {
                protocol,
                codec,
                method,
                send_compression: compression,
                options: u8::from(get) | if variant == 2 { 0 } else { 4 },
                compress_min: 0,
                requests: (0..3).map(|n| text(n).into_bytes()).collect(),
                headers: vec![(0, b"hello".to_vec()), (2, vec![0, 0xff])],
                responses: (3..5).map(|n| text(n).into_bytes()).collect(),
                code,
                message: "bad state: naïve 100% ✓".as_bytes().to_vec(),
                details: vec![(
                    b"google.rpc.RetryInfo".to_vec(),
                    b"\x0a\x02\x08\x05".to_vec(),
                )],
                trailers: vec![(1, b"bye".to_vec()), (2, vec![1])],
                request_chunks: if variant == 2 {
                    vec![7, 1, 200]
                } else {
                    Vec::new()
                },
                response_chunks: if variant == 2 {
                    vec![3, 100]
                } else {
                    Vec::new()
                },
            };
            let observed = script.exchange();
            add_trace_seeds(&mut seeds, &script, &observed.trace);
        }
    }
    seeds
}

fn add_trace_seeds(seeds: &mut Corpora, script: &PairScript, trace: &[Wire]) {
    let mut add = |target: &'static str, data: Vec<u8>| {
        seeds.entry(target).or_default().insert(data);
    };
    let method = script.method();
    let mut server = ServerScript {
        method: script.method % 4,
        http_method: 0,
        query: Vec::new(),
        headers: Vec::new(),
        max_recv: u16::MAX,
        max_send: u16::MAX,
        options: 0,
        ops: Vec::new(),
    };
    let mut client = ClientScript {
        protocol: script.protocol % 3,
        codec: script.codec % 2,
        method: script.method % 4,
        // The scripts name seven compressions (the last one unknown).
        send_compression: script.send_compression % 7,
        options: script.options & 7,
        timeout_ms: 30_000,
        max_recv: u16::MAX,
        ops: script
            .request_messages()
            .iter()
            .map(|m| ClientOp::SendMessage(m.to_vec()))
            .collect(),
    };
    if method.stream_type.client_streams() {
        client.ops.push(ClientOp::CloseSend);
    }
    let (mut request_body, mut response_body) = (Vec::new(), Vec::new());
    let (mut request_encoding, mut response_encoding) = (None, None);
    let mut connect_unary_error = false;
    let mut maps = Vec::new();
    for wire in trace {
        match wire {
            Wire::RequestHead(parts) => {
                server.headers = header_pairs(&parts.headers);
                if parts.method == Method::GET {
                    server.http_method = 1;
                    let query = parts.uri.query().unwrap_or_default();
                    server.query = query.as_bytes().to_vec();
                    add("connect_get_query", [&[1][..], query.as_bytes()].concat());
                    if let Ok(get) = wire::connect::decode_get_query(query, true) {
                        request_encoding = get.compression;
                        request_body = get.message.to_vec();
                    }
                }
                request_encoding = request_encoding.or_else(|| encoding(&parts.headers));
                maps.push(parts.headers.clone());
            }
            Wire::RequestData(d) => {
                request_body.extend_from_slice(d);
                server.ops.push(ServerOp::Data(d.to_vec()));
            }
            Wire::RequestEnd => server.ops.push(ServerOp::End),
            Wire::AppHeaders(hs) => server.ops.push(ServerOp::SendHeaders(header_pairs(hs))),
            Wire::AppMessage(m) => server.ops.push(ServerOp::SendMessage(m.to_vec())),
            Wire::AppFinish(result, trailers) => {
                let (code, message, details) = match result {
                    Ok(()) => (0, Vec::new(), Vec::new()),
                    Err(s) => (
                        s.code().as_u32(),
                        s.message().as_bytes().to_vec(),
                        s.details()
                            .iter()
                            .map(|d| (d.type_name.as_bytes().to_vec(), d.value.to_vec()))
                            .collect(),
                    ),
                };
                server.ops.push(ServerOp::Finish(
                    code,
                    message,
                    details,
                    header_pairs(trailers),
                ));
            }
            Wire::ResponseHead(parts) => {
                client.ops.push(ClientOp::RecvHead(
                    parts.status.as_u16(),
                    header_pairs(&parts.headers),
                ));
                connect_unary_error = parts.status != StatusCode::OK;
                response_encoding = encoding(&parts.headers);
                maps.push(parts.headers.clone());
            }
            Wire::ResponseData(d) => {
                response_body.extend_from_slice(d);
                client.ops.push(ClientOp::Data(d.to_vec()));
            }
            Wire::ResponseTrailers(t) => {
                client.ops.push(ClientOp::Trailers(header_pairs(t)));
                maps.push(t.clone());
            }
            Wire::ResponseEnd => client.ops.push(ClientOp::End),
            // A well-behaved exchange has no resets.
            Wire::RequestReset | Wire::ResponseReset => {}
        }
    }
    add("server_call", server.to_bytes());
    add("client_call", client.to_bytes());
    add("call_pair", script.to_bytes());

    let connect_unary = script.protocol % 3 == 0 && method.stream_type == StreamType::Unary;
    let add_compressed =
        |add: &mut dyn FnMut(&'static str, Vec<u8>), encoding: &Option<String>, data: &[u8]| {
            let target = match encoding.as_deref() {
                Some("gzip") => "decompress_gzip",
                Some("zstd") => "decompress_zstd",
                Some("br") => "decompress_br",
                Some("deflate") => "decompress_deflate",
                Some("snappy") => "decompress_snappy",
                _ => return Bytes::copy_from_slice(data),
            };
            add(target, [&[0xff, 0xff][..], data].concat());
            let registry = CompressionRegistry::default();
            let algorithm = registry
                .get(target.trim_start_matches("decompress_"))
                .expect("known");
            algorithm
                .decompress(data, 1 << 20)
                .expect("our own compressed data")
        };
    if connect_unary {
        let body = add_compressed(&mut add, &response_encoding, &response_body);
        if connect_unary_error {
            add("connect_error", body.to_vec());
        }
        if !request_body.is_empty() {
            add_compressed(&mut add, &request_encoding, &request_body);
        }
    } else {
        for (body, encoding) in [
            (&request_body, &request_encoding),
            (&response_body, &response_encoding),
        ] {
            add("envelope", [&[0xff, 0xff, 0][..], body].concat());
            add("envelope", [&[0x00, 0x04, 3, 1, 7, 200][..], body].concat());
            let mut decoder = EnvelopeDecoder::new(1 << 20);
            decoder.push(Bytes::copy_from_slice(body));
            while let Ok(Some(e)) = decoder.decode() {
                let payload = if e.flags & flags::COMPRESSED != 0 {
                    add_compressed(&mut add, encoding, &e.data)
                } else {
                    e.data
                };
                if e.flags & flags::END_STREAM != 0 && script.protocol % 3 == 0 {
                    add("connect_end_stream", payload.to_vec());
                    if let Ok(end) = wire::connect::decode_end_stream(&payload) {
                        maps.push(end.metadata);
                    }
                } else if e.flags & flags::TRAILERS != 0 {
                    add("grpc_web_trailers", payload.to_vec());
                    if let Ok(t) = wire::grpc_web::decode_trailers(&payload) {
                        maps.push(t);
                    }
                }
            }
        }
    }
    for map in &maps {
        for (name, value) in map {
            let bytes = value.as_bytes().to_vec();
            match name.as_str() {
                "content-type" => add("content_type", bytes),
                "connect-timeout-ms" | "grpc-timeout" => add("timeout", bytes),
                "grpc-message" => add("grpc_message", bytes),
                n if n.ends_with("-bin") => {
                    if n == "grpc-status-details-bin" {
                        if let Ok(details) = decode_binary_header(value) {
                            add("grpc_status_details", details.to_vec());
                        }
                    }
                    add("binary_metadata", bytes);
                }
                _ => {}
            }
        }
    }
}

/// Writes [`seed_corpora`] as `dir/<target>/<hash>`; returns how many files it wrote.
fn write_seed_corpora(dir: &Path) -> std::io::Result<usize> {
    let mut written = 0;
    for (target, seeds) in seed_corpora() {
        let target_dir = dir.join(target);
        std::fs::create_dir_all(&target_dir)?;
        for seed in seeds {
            let mut hasher = DefaultHasher::new();
            seed.hash(&mut hasher);
            std::fs::write(
                target_dir.join(format!("seed-{:016x}", hasher.finish())),
                &seed,
            )?;
            written += 1;
        }
    }
    Ok(written)
}

/// Also writes the corpora when `CONNECT_FUZZ_CORPUS_DIR` is set (`fuzz/run.sh` does).
#[test]
fn every_target_has_seeds_that_pass_its_checks() {
    let corpora = seed_corpora();
    for (target, seeds) in &corpora {
        assert!(!seeds.is_empty(), "no seeds for {target}");
        for seed in seeds {
            assert!(run(target, seed), "no target {target}");
        }
    }
    if let Some(dir) = std::env::var_os("CONNECT_FUZZ_CORPUS_DIR") {
        let n = write_seed_corpora(Path::new(&dir)).expect("write the seed corpora");
        println!("wrote {n} seeds to {}", Path::new(&dir).display());
    }
}

/// Inputs that once broke a target, kept in `fuzz/regressions/<target>/` after their fix. A
/// directory whose name is no target here is an error, so that no input is skipped unnoticed
/// (`view_decoder`'s are replayed by connect-build-tests).
#[test]
fn crash_inputs_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions") {
        let target_dir = entry.expect("directory entry").path();
        let target = target_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("");
        if target == "view_decoder" {
            continue;
        }
        for input in std::fs::read_dir(&target_dir).expect("a target's directory") {
            let path = input.expect("directory entry").path();
            println!("{target}: {}", path.display());
            let data = std::fs::read(&path).expect("read a crash input");
            assert!(run(target, &data), "{} is under no target", path.display());
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no crash inputs found in {}", dir.display());
}

#[test]
fn scripts_round_trip_through_their_byte_format() {
    let corpora = seed_corpora();
    for seed in &corpora["server_call"] {
        assert_eq!(&ServerScript::from_bytes(seed).to_bytes(), seed);
    }
    for seed in &corpora["client_call"] {
        assert_eq!(&ClientScript::from_bytes(seed).to_bytes(), seed);
    }
    for seed in &corpora["call_pair"] {
        assert_eq!(&PairScript::from_bytes(seed).to_bytes(), seed);
    }
}
