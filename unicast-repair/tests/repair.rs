//! Symbol repair on a real server: answers decode to the exact blocks.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{TestSource, bytes, get, request, serve};
use dms_fec::{BlockDecoder, FecScheme, PayloadId};
use dms_repair::container::ContainerReader;
use dms_repair::query::{EsiRange, RepairItem, RepairQuery, format_query};
use dms_repair::{ServiceConfig, router};

const T: u16 = 1280;

async fn setup(config: ServiceConfig) -> (String, Vec<u8>, dms_repair::ObjectInfo) {
    let source = TestSource::new();
    // 3 blocks of ~200 symbols; the last symbol is short.
    let data = bytes(3 * 200 * 1280 - 77, 2);
    let info = source.add("obj2", "fw.bin", &data, T, 200);
    let base = serve(router(source, None, config)).await;
    (base, data, info)
}

fn repair_url(base: &str, query: &RepairQuery) -> String {
    format!("{base}/repair?{}", format_query(query))
}

#[tokio::test]
async fn source_symbols_are_the_file_bytes() {
    let (base, data, info) = setup(ServiceConfig::default()).await;
    let layout = info.oti.layout();
    let last = layout.block_count() - 1;
    let k = layout.source_symbols(last).unwrap();
    let query = RepairQuery {
        file_uri: info.content_location.clone(),
        items: vec![RepairItem::Symbols {
            sbn: last,
            esis: vec![
                EsiRange { first: 0, last: 2 },
                EsiRange {
                    first: k - 1,
                    last: k - 1,
                },
            ],
        }],
    };
    let a = get(&repair_url(&base, &query), &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("content-type"),
        Some("application/simpleSymbolContainer")
    );
    let symbols: Vec<_> = ContainerReader::new(&a.body, FecScheme::RaptorQ, T)
        .collect::<Result<_, _>>()
        .unwrap();
    let ids: Vec<_> = symbols.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids,
        [0, 1, 2, k - 1]
            .map(|esi| PayloadId::new(last, esi))
            .to_vec()
    );
    let offset = layout.block_offset(last).unwrap() as usize;
    for (id, symbol) in symbols {
        let start = offset + id.esi as usize * usize::from(T);
        let end = (start + usize::from(T)).min(data.len());
        assert_eq!(&symbol[..end - start], &data[start..end]);
        assert!(
            symbol[end - start..].iter().all(|&b| b == 0),
            "zero padding"
        );
    }
}

#[tokio::test]
async fn repair_symbols_decode_the_block_with_losses() {
    let (base, data, info) = setup(ServiceConfig::default()).await;
    let layout = info.oti.layout();
    let sbn = 1;
    let k = layout.source_symbols(sbn).unwrap();
    let offset = layout.block_offset(sbn).unwrap() as usize;
    let t = usize::from(T);
    let mut decoder = BlockDecoder::new(&layout, sbn).unwrap();
    // "Received" every third source symbol is lost.
    let mut lost = 0;
    for esi in 0..k {
        if esi % 3 == 0 {
            lost += 1;
            continue;
        }
        let s = offset + esi as usize * t;
        decoder.add_symbol(esi, &data[s..s + t]).unwrap();
    }
    assert!(decoder.data().is_none());
    // Two servers, disjoint fresh ESIs (as a client would ask them).
    for (count, start) in [(lost / 2, 5000), (lost - lost / 2 + 2, 9000)] {
        let query = RepairQuery {
            file_uri: info.content_location.clone(),
            items: vec![RepairItem::More {
                sbn,
                count,
                first_esi: Some(start),
            }],
        };
        // POST carries the same query as the body.
        let a = request(
            "POST",
            &format!("{base}/repair"),
            &[],
            format_query(&query).as_bytes(),
        )
        .await;
        assert_eq!(a.status, 200);
        let mut n = 0;
        for item in ContainerReader::new(&a.body, FecScheme::RaptorQ, T) {
            let (id, symbol) = item.unwrap();
            assert_eq!(id, PayloadId::new(sbn, start + n));
            decoder.add_symbol(id.esi, symbol).unwrap();
            n += 1;
        }
        assert_eq!(n, count);
    }
    let block = decoder.data().expect("decoded with K + 2 symbols");
    assert_eq!(
        block,
        &data[offset..offset + layout.block_len(sbn).unwrap()]
    );
}

#[tokio::test]
async fn errors_are_json_400_and_404() {
    let config = ServiceConfig {
        max_symbols_per_request: 100,
        ..ServiceConfig::default()
    };
    let (base, _, info) = setup(config).await;
    let loc = percent(&info.content_location);
    for (query, status) in [
        (format!("fileURI={loc}&SBN=3"), 400),
        (format!("fileURI={loc}&SBN=0;ESI=99999999"), 400),
        (format!("fileURI={loc}&SBN=0;ESI=5-2"), 400),
        (format!("fileURI={loc}&SBN=x"), 400),
        (format!("fileURI={loc}"), 400), // whole file: over the cap
        ("SBN=1".to_owned(), 400),
        ("fileURI=http%3A%2F%2Fnowhere%2Fx&SBN=0".to_owned(), 404),
    ] {
        let a = get(&format!("{base}/repair?{query}"), &[]).await;
        assert_eq!(a.status, status, "{query}");
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert!(v["error"].is_string(), "{query}");
    }
    let a = get(&format!("{base}/repair?fileURI={loc}&SBN=0;ESI=0-99"), &[]).await;
    assert_eq!(a.status, 200);
}

fn percent(s: &str) -> String {
    s.replace(':', "%3A").replace('/', "%2F")
}

#[tokio::test]
async fn cached_blocks_answer_exactly_as_fresh_ones() {
    // One object behind two servers: cache off (each request prepares its
    // block) and the default cache (the second request on a block is
    // answered from the first's prepared block).
    let source = TestSource::new();
    let data = bytes(3 * 200 * 1280 - 77, 5);
    let info = source.add("obj5", "fw.bin", &data, T, 200);
    let off = serve(router(
        source.clone(),
        None,
        ServiceConfig {
            encoder_cache_bytes: 0,
            ..ServiceConfig::default()
        },
    ))
    .await;
    let cached = serve(router(source, None, ServiceConfig::default())).await;
    let layout = info.oti.layout();
    let last = layout.block_count() - 1;
    let k = layout.source_symbols(last).unwrap();
    let queries = [
        // Repair symbols: the first prepares the block, the rest reuse it.
        vec![RepairItem::More {
            sbn: last,
            count: 20,
            first_esi: None,
        }],
        vec![RepairItem::More {
            sbn: last,
            count: 20,
            first_esi: Some(k + 1000),
        }],
        // Source symbols of the now cached block, the short last one too,
        // beside repair symbols of another block.
        vec![
            RepairItem::Symbols {
                sbn: last,
                esis: vec![
                    EsiRange { first: 3, last: 9 },
                    EsiRange {
                        first: k - 2,
                        last: k + 4,
                    },
                ],
            },
            RepairItem::More {
                sbn: 0,
                count: 5,
                first_esi: Some(70_000),
            },
        ],
    ];
    for _round in 0..2 {
        for items in &queries {
            let query = RepairQuery {
                file_uri: info.content_location.clone(),
                items: items.clone(),
            };
            let fresh = get(&repair_url(&off, &query), &[]).await;
            let reused = get(&repair_url(&cached, &query), &[]).await;
            assert_eq!(fresh.status, 200);
            assert_eq!(reused.status, 200);
            assert!(!fresh.body.is_empty());
            assert_eq!(fresh.body, reused.body, "{items:?}");
        }
    }
    // The cached server's repair symbols still decode the block.
    let query = RepairQuery {
        file_uri: info.content_location.clone(),
        items: vec![RepairItem::More {
            sbn: last,
            count: k + 2,
            first_esi: Some(k + 500),
        }],
    };
    let a = get(&repair_url(&cached, &query), &[]).await;
    let mut decoder = BlockDecoder::new(&layout, last).unwrap();
    for symbol in ContainerReader::new(&a.body, FecScheme::RaptorQ, T) {
        let (id, symbol) = symbol.unwrap();
        decoder.add_symbol(id.esi, symbol).unwrap();
    }
    let offset = layout.block_offset(last).unwrap() as usize;
    assert_eq!(
        decoder.data().expect("decoded from K + 2 repair symbols"),
        &data[offset..offset + layout.block_len(last).unwrap()]
    );
}
