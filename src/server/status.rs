//! The JSON shapes of the API for one torrent: what `/api/torrents` answers.
//!
//! Reads the registry, the torrent and the store; must never change them.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use std::time::Instant;

use crate::demand::{Phase, Tier};
use crate::hybrid::State;
use crate::session::{Session, Torrent};

/// The JSON the API answers for one torrent.
pub fn torrent(session: &Session, t: &Torrent) -> Value {
    let ih = t.info_hash.to_hex();
    let per_tier = |counters: [u64; 3]| -> Value {
        let tiers = [Tier::Cache, Tier::P2p, Tier::Http];
        tiers
            .iter()
            .map(|tier| (tier.name().to_string(), json!(counters[*tier as usize])))
            .collect()
    };
    let served = per_tier(t.served());
    let fetched = per_tier([
        0,
        t.demand.fetched_p2p.load(Ordering::Relaxed),
        t.demand.fetched_http.load(Ordering::Relaxed),
    ]);
    let swarm = t.swarm_stats();
    let phase = t.demand.phase();
    let (tier, error) = match &phase {
        Phase::Idle => (Value::Null, Value::Null),
        Phase::P2p { .. } => (json!("p2p"), Value::Null),
        Phase::Http => (json!("http"), Value::Null),
        Phase::Failed(reason) => (Value::Null, json!(reason)),
    };
    let mut status = json!({
        "infoHash": ih,
        "name": t.name(),
        "state": "waiting for metadata",
        "files": [],
        "selectedFile": null,
        "streamUrl": format!("/stream/proxy/{ih}"),
        "servingTier": t.serving().map(Tier::name),
        "workingTier": tier,
        "error": error,
        "lifecycle": lifecycle(t),
        "bytesServed": served,
        "bytesFetched": fetched,
        "sources": t.demand.sources(),
        "peers": {
            "connected": swarm.peers,
            "unchoked": swarm.unchoked,
            "queued": swarm.queued,
            "known": swarm.unique,
            "downloadSpeed": swarm.download_speed as u64,
            "uploadSpeed": swarm.upload_speed as u64,
            "downloaded": swarm.downloaded,
            "uploaded": swarm.uploaded,
        },
    });
    let Some(meta) = t.meta() else {
        if matches!(phase, Phase::Failed(_)) {
            status["state"] = json!("failed");
        }
        return status;
    };
    let selected = Torrent::default_file(&meta);
    let files: Vec<Value> = meta
        .files
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.padding)
        .map(|(i, f)| json!({"index": i, "path": f.path.join("/"), "length": f.length}))
        .collect();
    let (verified_pieces, verified_bytes) = session.store.verified(&t.info_hash).unwrap_or((0, 0));
    let file_progress = selected.map(|i| session.file_progress(&meta, i));
    let state = match (file_progress, &phase) {
        (Some(p), _) if p >= 1.0 => "cached",
        (_, Phase::Failed(_)) => "failed",
        (_, Phase::Http) => "downloading",
        _ => "ready",
    };
    let extra = json!({
        "name": meta.name,
        "state": state,
        "files": files,
        "selectedFile": selected,
        "totalLength": meta.total_length,
        "pieces": meta.piece_count(),
        "verifiedPieces": verified_pieces,
        "verifiedBytes": verified_bytes,
        "progress": file_progress,
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        status[k] = v.clone();
    }
    status
}

/// Where the torrent is in its life, and for a failed one why and when the
/// next try is (`retryInMs` from now; a player asking again tries at once).
fn lifecycle(t: &Torrent) -> Value {
    let state = t.state();
    let (reason, retry_in) = match &state {
        State::Failed { reason, retry_at } => (
            json!(reason),
            json!(retry_at
                .saturating_duration_since(Instant::now())
                .as_millis() as u64),
        ),
        _ => (Value::Null, Value::Null),
    };
    json!({
        "state": state.name(),
        "reason": reason,
        "retryInMs": retry_in,
        "failures": t.failures(),
        "retries": t.retries(),
    })
}
