//! Micro-benchmarks of the Sans-IO core: envelopes, compression, the call machines, error and
//! trailer encoding. `cargo bench -p connect-benches --bench core`.

use bytes::Bytes;
use connect_benches::pair::{self, protocol_name, PROTOCOLS};
use connect_benches::workload;
use connect_proto::wire::{connect, grpc, grpc_web};
use connect_proto::{encode_envelope, EnvelopeDecoder};
use connect_typed::{CompressionRegistry, ErrorDetail, ServerConfig, Status};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

const SIZES: [(usize, &str); 3] = [(64, "64B"), (16 * 1024, "16KiB"), (1024 * 1024, "1MiB")];

fn payload(len: usize) -> Bytes {
    // Log-like text, so that compression sees realistic input.
    let text = workload::encode(&workload::ingest_request());
    Bytes::from(text.iter().copied().cycle().take(len).collect::<Vec<u8>>())
}

fn envelopes(c: &mut Criterion) {
    let mut group = c.benchmark_group("envelope");
    for (len, name) in SIZES {
        let data = payload(len);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("encode", name), &data, |b, data| {
            b.iter(|| encode_envelope(0, black_box(data.clone())))
        });
        let (head, tail) = encode_envelope(0, data.clone());
        let mut wire = head.to_vec();
        if let Some(tail) = tail {
            wire.extend_from_slice(&tail);
        }
        let wire = Bytes::from(wire);
        group.bench_with_input(BenchmarkId::new("decode", name), &wire, |b, wire| {
            b.iter(|| {
                let mut decoder = EnvelopeDecoder::new(2 << 20);
                decoder.push(black_box(wire.clone()));
                decoder.decode().expect("fits").expect("complete")
            })
        });
        // The same envelope arriving in 16 KiB chunks (HTTP/2 DATA frames).
        let chunks: Vec<Bytes> = wire.chunks(16 * 1024).map(Bytes::copy_from_slice).collect();
        group.bench_with_input(
            BenchmarkId::new("decode-chunked", name),
            &chunks,
            |b, chunks| {
                b.iter(|| {
                    let mut decoder = EnvelopeDecoder::new(2 << 20);
                    for c in chunks {
                        decoder.push(c.clone());
                    }
                    decoder.decode().expect("fits").expect("complete")
                })
            },
        );
    }
    group.finish();
}

fn compression(c: &mut Criterion) {
    let registry = CompressionRegistry::default();
    let mut group = c.benchmark_group("compression");
    for algorithm in ["gzip", "zstd"] {
        let compressor = registry.get(algorithm).expect("built in").clone();
        for (len, name) in SIZES {
            let data = payload(len);
            let packed = compressor.compress(&data).expect("compress");
            group.throughput(Throughput::Bytes(len as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("{algorithm}-compress"), name),
                &data,
                |b, data| b.iter(|| compressor.compress(black_box(data)).expect("compress")),
            );
            group.bench_with_input(
                BenchmarkId::new(format!("{algorithm}-decompress"), name),
                &packed,
                |b, packed| {
                    b.iter(|| {
                        compressor
                            .decompress(black_box(packed), 2 << 20)
                            .expect("decompress")
                    })
                },
            );
        }
    }
    group.finish();
}

fn calls(c: &mut Criterion) {
    let server_config = ServerConfig::default();
    let echo = workload::echo_request_bytes();
    let mut group = c.benchmark_group("unary-call");
    for protocol in PROTOCOLS {
        let client_config = pair::client_config(protocol);
        group.bench_function(
            BenchmarkId::new("client+server", protocol_name(protocol)),
            |b| {
                b.iter(|| {
                    pair::unary_round_trip(&client_config, &server_config, black_box(echo.clone()))
                })
            },
        );
        let (_, request) = pair::client_request(&client_config, pair::ECHO, echo.clone());
        group.bench_function(BenchmarkId::new("server", protocol_name(protocol)), |b| {
            b.iter(|| pair::serve(&server_config, pair::ECHO, black_box(&request), 1))
        });
        group.bench_function(BenchmarkId::new("client", protocol_name(protocol)), |b| {
            let response = pair::serve(&server_config, pair::ECHO, &request, 1);
            b.iter_batched(
                || {
                    let (client, _) =
                        pair::client_request(&client_config, pair::ECHO, echo.clone());
                    let response = response.iter().map(pair::copy_transmit).collect();
                    (client, response)
                },
                |(mut client, response)| pair::client_response(&mut client, response),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    group.finish();

    // The typed layer on top: the router, our generated server and the echo handler, in memory (no
    // HTTP stack), request body in one chunk, response body read to its end.
    // `+noop-interceptor`: the same with an interceptor that implements every phase and does
    // nothing, the cost of the interceptor machinery.
    let routers = [
        ("router+handler", pair::rpc_router()),
        (
            "router+handler+noop-interceptor",
            pair::rpc_router_noop_interceptor(),
        ),
    ];
    let mut group = c.benchmark_group("rpc-unary-call");
    for protocol in PROTOCOLS {
        let client_config = pair::client_config(protocol);
        let (_, request) = pair::client_request(&client_config, pair::ECHO, echo.clone());
        for (name, router) in &routers {
            group.bench_function(BenchmarkId::new(*name, protocol_name(protocol)), |b| {
                b.iter_batched(
                    || pair::http_request(&request),
                    |request| pair::rpc_call(router, request),
                    criterion::BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();

    // Per-message cost of a stream: one request, 100 response messages, both machines.
    let mut group = c.benchmark_group("server-stream-100-messages");
    group.throughput(Throughput::Elements(100));
    let request_payload = workload::stream_request_bytes(100);
    for protocol in PROTOCOLS {
        let client_config = pair::client_config(protocol);
        let (_, request) =
            pair::client_request(&client_config, pair::SERVER_STREAM, request_payload.clone());
        group.bench_function(BenchmarkId::new("server", protocol_name(protocol)), |b| {
            b.iter(|| {
                pair::serve(
                    &server_config,
                    pair::SERVER_STREAM,
                    black_box(&request),
                    100,
                )
            })
        });
        group.bench_function(
            BenchmarkId::new("client+server", protocol_name(protocol)),
            |b| {
                b.iter(|| {
                    let (mut client, request) = pair::client_request(
                        &client_config,
                        pair::SERVER_STREAM,
                        request_payload.clone(),
                    );
                    let response = pair::serve(&server_config, pair::SERVER_STREAM, &request, 100);
                    pair::client_response(&mut client, response)
                })
            },
        );
    }
    group.finish();
}

fn errors(c: &mut Criterion) {
    let status = Status::new(
        connect_typed::Code::NOT_FOUND,
        "order 900123 not found in region eu-west-1",
    )
    .with_detail(ErrorDetail::new(
        "google.rpc.ErrorInfo",
        Bytes::from_static(b"\x0a\x09NOT_FOUND"),
    ));
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-request-id", http::HeaderValue::from_static("7f3c2a9e"));
    let mut group = c.benchmark_group("errors-trailers");
    group.bench_function("connect-error-json", |b| {
        b.iter(|| connect::encode_error(black_box(&status)))
    });
    group.bench_function("connect-end-stream", |b| {
        b.iter(|| connect::encode_end_stream(Some(black_box(&status)), &trailers))
    });
    group.bench_function("grpc-status-trailers", |b| {
        b.iter(|| {
            let mut block = trailers.clone();
            grpc::write_status(Err(black_box(&status)), &mut block);
            block
        })
    });
    group.bench_function("grpc-ok-trailers", |b| {
        b.iter(|| {
            let mut block = http::HeaderMap::new();
            grpc::write_status(Ok(()), &mut block);
            block
        })
    });
    let mut block = trailers.clone();
    grpc::write_status(Err(&status), &mut block);
    group.bench_function("grpc-web-trailer-frame", |b| {
        b.iter(|| grpc_web::encode_trailers(black_box(&block)))
    });
    group.finish();
}

criterion_group!(benches, envelopes, compression, calls, errors);
criterion_main!(benches);
