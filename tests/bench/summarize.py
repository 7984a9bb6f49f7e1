#!/usr/bin/env python3
"""Reads the JSON files the benchmarks wrote (tests/bench/run.sh) and prints one table of the
headline figures, each with its baseline and goal, then writes them all to summary.json.

  tests/bench/summarize.py RESULTS_DIR

A figure whose file or key is missing prints as "n/a": a benchmark that failed or was skipped
leaves its rows empty rather than hiding the others.
"""
import datetime
import json
import os
import platform
import sys


def load(directory, name):
    try:
        with open(os.path.join(directory, name + ".json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def get(doc, *path):
    for key in path:
        if isinstance(doc, dict) and key in doc:
            doc = doc[key]
        else:
            return None
    return doc


def fmt(value, spec="{:.0f}", unit=""):
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    return spec.format(value) + unit


def mb(kb):
    return None if kb is None else kb / 1024.0


def goal(value, ok):
    if value is None:
        return "n/a"
    return "met" if ok(value) else "NOT met"


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    directory = sys.argv[1]
    proxy = load(directory, "proxy")
    hops = load(directory, "hops")
    cache = load(directory, "cache")
    ratelimit = load(directory, "ratelimit")
    concurrency = load(directory, "concurrency")
    scaleout = load(directory, "scaleout")
    freeze = load(directory, "freeze")
    translate = load(directory, "translate")
    shares = load(directory, "shares")
    memory = load(directory, "memory")
    hits = load(directory, "hits")

    rows = []  # (scenario, figure, value, baseline, goal)
    why_not = {}  # row index -> the measured reason a goal is not met, and the next step

    def row(scenario, figure, value, baseline="", goal_text="", why=""):
        if "NOT met" in goal_text and why:
            why_not[len(rows)] = why
        rows.append((scenario, figure, value, baseline, goal_text))

    # 1. Proxy overhead.
    ratio50 = get(proxy, "ratio_gateway_to_nginx_added", "p50")
    ratio99 = get(proxy, "ratio_gateway_to_nginx_added", "p99")
    row("1 proxy overhead", "GetAudience latency p50 / p99 (us), gateway",
        fmt(get(proxy, "gateway", "latency_us", "p50")) + " / " +
        fmt(get(proxy, "gateway", "latency_us", "p99")),
        "direct " + fmt(get(proxy, "direct", "latency_us", "p50")) + " / " +
        fmt(get(proxy, "direct", "latency_us", "p99")) + ", nginx proxy " +
        fmt(get(proxy, "nginx_proxy", "latency_us", "p50")) + " / " +
        fmt(get(proxy, "nginx_proxy", "latency_us", "p99")))
    row("1 proxy overhead", "added latency p50 / p99 (us), gateway",
        fmt(get(proxy, "gateway_added_us", "p50")) + " / " +
        fmt(get(proxy, "gateway_added_us", "p99")),
        "nginx " + fmt(get(proxy, "nginx_added_us", "p50")) + " / " +
        fmt(get(proxy, "nginx_added_us", "p99")))
    # n/a when nginx added nothing measurable at that percentile (the ratio has no meaning).
    row("1 proxy overhead", "gateway added / nginx added, p50 / p99",
        fmt(ratio50, "{:.2f}") + " / " + fmt(ratio99, "{:.2f}"), "",
        "<= 1.0: " + goal(ratio50 if ratio50 is not None else ratio99, lambda v: v <= 1.0),
        why="the gateway terminates gRPC, paces and decodes the REST JSON into protobuf where nginx "
        "forwards bytes (profile.sh: decode 39% of its instructions, libcurl 27%, gRPC 25%); "
        "next: the decode (row 4)")
    row("1 proxy overhead", "CPU per call (us), gateway",
        fmt(get(proxy, "gateway_cpu_us_per_call")),
        "nginx proxy " + fmt(get(proxy, "nginx_proxy_cpu_us_per_call")))
    row("1 proxy overhead", "throughput (calls/s), gateway",
        fmt(get(proxy, "gateway", "throughput_per_s")),
        "direct " + fmt(get(proxy, "direct", "throughput_per_s")) + ", nginx proxy " +
        fmt(get(proxy, "nginx_proxy", "throughput_per_s")))

    # Thread hops: an uncached call at 1 in flight against --concurrency, and the gateway pinned
    # to 1 core against 2 (taskset); both baselines are measured in the same run.
    many = fmt(get(hops, "concurrency"))
    row("1 hops", "gateway CPU per uncached call at 1 in flight (us)",
        fmt(get(hops, "this", "cpu_us_per_call_one")),
        "at %s in flight: %s" % (many, fmt(get(hops, "this", "cpu_us_per_call_many"))))
    cpu_ratio = get(hops, "this", "cpu_ratio_one_to_many", "value")
    row("1 hops", "CPU per call, 1 in flight / %s" % many, fmt(cpu_ratio, "{:.2f}"), "",
        "<= 1.2: " + goal(cpu_ratio, lambda v: v <= 1.2),
        why="at 1 in flight a call pays ~7 thread wake-ups that batch to ~3 at 16, most of them in "
        "gRPC's own callback threads (bench_hops prints sleeps per call by thread: 4.4 of 7.2 in "
        "gRPC's nexting_thread, 2026-12-03); next: measure gRPC's polling and executor options "
        "before any change of ours")
    row("1 hops", "busiest gateway thread at %s in flight, CPU per call (us)" % many,
        fmt(get(hops, "this", "busiest_thread", "cpu_us_per_call")) + " (" +
        str(get(hops, "this", "busiest_thread", "name")) + ")")
    scaling = get(hops, "this", "core_scaling", "value")
    row("1 hops", "uncached calls/s, gateway on 2 cores (taskset)",
        fmt(get(hops, "this", "calls_per_s_two_cores")),
        "on 1 core: " + fmt(get(hops, "this", "calls_per_s_one_core")))
    row("1 hops", "core scaling, 2 cores / 1 (client and nginx share the 2 cores)",
        fmt(scaling, "{:.2f}"), "", ">= 1.6: " + goal(scaling, lambda v: v >= 1.6),
        why="not measurable on 2 cores: the load generator and nginx share the 2-core gateway's "
        "second core (the 1-core gateway has a core to itself); the busiest thread's CPU per call "
        "above bounds one replica; next: run on a machine with >= 4 cores")

    # 2. Cache hits.
    hit_ratio = get(cache, "hit_throughput", "ratio")
    row("2 cache hits", "ListAudiences hits (calls/s)",
        fmt(get(cache, "hit_throughput", "list_hit_calls_per_s")),
        "Health/Check " + fmt(get(cache, "hit_throughput", "health_calls_per_s")))
    row("2 cache hits", "hits / Health/Check", fmt(hit_ratio, "{:.2f}"), "",
        ">= 0.8: " + goal(hit_ratio, lambda v: v >= 0.8),
        why="the project's load generator shares the two cores with the gateway and flattens the "
        "ratio; bench_hits (row 2b, h2load on its own core) is the measure")
    row("2 cache hits", "gateway CPU per call (us)",
        fmt(get(cache, "hit_throughput", "list_gateway_cpu_us_per_call")),
        "Health/Check " + fmt(get(cache, "hit_throughput", "health_gateway_cpu_us_per_call")))
    sf = get(cache, "singleflight", "upstream_requests")
    row("2 cache hits", "%s identical cold calls -> upstream requests" %
        fmt(get(cache, "singleflight", "calls")), fmt(sf), "", "1: " + goal(sf, lambda v: v == 1))
    row("2 cache hits", "%s keys: cache bytes (byte bound held)" %
        fmt(get(cache, "distinct_keys", "keys")),
        fmt(get(cache, "distinct_keys", "cache_bytes")) + " (" +
        fmt(get(cache, "distinct_keys", "bound_held")) + ")",
        "bound " + fmt(get(cache, "distinct_keys", "cache_max_bytes")))

    # 2b. Cache hits at the gRPC stack's limit (bench_hits: h2load, gateway on its own core).
    to_floor = get(hits, "median", "hit_to_floor")
    to_health = get(hits, "median", "hit_to_health")
    row("2b hits at the limit (h2load)", "ListAudiences hits (calls/s, median)",
        fmt(get(hits, "median", "hit", "calls_per_s")),
        "floor " + fmt(get(hits, "median", "floor", "calls_per_s")) + ", Health/Check " +
        fmt(get(hits, "median", "health", "calls_per_s")))
    row("2b hits at the limit (h2load)", "hits / floor", fmt(to_floor, "{:.2f}"), "",
        ">= 0.95: " + goal(to_floor, lambda v: v >= 0.95),
        why="a hit's excess over the floor is the call line (~2 us and its writer thread on the "
        "same core: 0.84 of the floor without call lines), routing and checks (~2 us: request id, "
        "trace context, peer) and the key, lookup and metrics (~1 us); next: the call line")
    row("2b hits at the limit (h2load)", "hits / Health/Check", fmt(to_health, "{:.2f}"), "",
        ">= 0.85: " + goal(to_health, lambda v: v >= 0.85),
        why="the floor itself (4.4 KB and two metadata entries) costs ~1 us more than Health/Check; "
        "the rest is the excess of the row above")
    row("2b hits at the limit (h2load)", "same ratios by gateway CPU per call (floor, health)",
        fmt(get(hits, "median", "cpu_hit_to_floor"), "{:.2f}") + ", " +
        fmt(get(hits, "median", "cpu_hit_to_health"), "{:.2f}"),
        "rates' spread across rounds " + fmt(get(hits, "median", "rate_spread"), "{:.0%}"))
    row("2b hits at the limit (h2load)", "gateway CPU per call (us)",
        fmt(get(hits, "median", "hit", "gateway_cpu_us_per_call"), "{:.1f}"),
        "floor " + fmt(get(hits, "median", "floor", "gateway_cpu_us_per_call"), "{:.1f}") +
        ", Health/Check " +
        fmt(get(hits, "median", "health", "gateway_cpu_us_per_call"), "{:.1f}"))

    # 3. Scale of waiting.
    queued = get(ratelimit, "queued")
    row("3 parked calls", "%s calls queued: threads" % fmt(get(queued, "calls")),
        fmt(get(queued, "threads_waiting")), "idle " + fmt(get(queued, "threads_idle")))
    row("3 parked calls", "RSS while queued (MB)", fmt(mb(get(queued, "rss_waiting_kb")), "{:.1f}"),
        "idle " + fmt(mb(get(queued, "rss_idle_kb")), "{:.1f}"))
    cpu_wait = get(queued, "cpu_waiting_percent")
    row("3 parked calls", "CPU while waiting (% of a core)", fmt(cpu_wait, "{:.1f}"),
        "idle " + fmt(get(queued, "cpu_idle_percent"), "{:.1f}"),
        "~0: " + goal(cpu_wait, lambda v: v < 2.0))
    row("3 rate limit", "utilisation of %s, upstream 429s" % (get(ratelimit, "limit") or "n/a"),
        fmt(get(ratelimit, "utilisation"), "{:.1%}") + ", " +
        fmt(get(ratelimit, "upstream_429")), "", "0 429s")
    row("3 concurrency", "%s calls in flight: threads" % fmt(get(concurrency, "calls")),
        fmt(get(concurrency, "threads_peak")), "idle " + fmt(get(concurrency, "threads_idle")))

    # 4. Translation.
    for bench in get(translate, "benchmarks") or []:
        name = bench.get("name", "?")
        if bench.get("run_type") == "aggregate":
            continue
        library_only = any(x in name for x in ("Protobuf", "Nlohmann", "BM_Proto"))
        row("4 translation", name + (" (baseline)" if library_only else "") + ", MB/s",
            fmt(bench.get("bytes_per_second", 0) / 1e6))

    # The decode goal: REST JSON text -> proto faster than nlohmann's DOM parse alone.
    rates = {b.get("name"): b.get("bytes_per_second") for b in get(translate, "benchmarks") or []
             if b.get("run_type") != "aggregate"}
    sax, dom = rates.get("BM_JsonTextToMessage"), rates.get("BM_NlohmannParse")
    decode = sax / dom if sax and dom else None
    row("4 translation", "REST JSON -> proto (JsonTextToMessage) / nlohmann DOM parse alone",
        fmt(decode, "{:.2f}"), "", "> 1.0: " + goal(decode, lambda v: v > 1.0),
        why="a page's decode is the lexer (RapidJSON's) plus the frames' reflection calls and "
        "allocations (perf of bench_translate); a page RapidJSON refuses also pays nlohmann's "
        "parse; next: perf the frames")

    # Scale-out (issue 9).
    util = get(scaleout, "shared_budget", "utilisation")
    row("scale-out", "3 replicas, shared budget utilisation", fmt(util, "{:.1%}"), "",
        ">= 90%: " + goal(util, lambda v: v >= 0.9))
    row("scale-out", "upstream 429s", fmt(get(scaleout, "shared_budget", "upstream_429")), "", "0")
    for level in get(scaleout, "redis_latency") or []:
        row("scale-out", "Redis added per call, %s in flight: p50 / p99 (ms)" % level.get("inflight"),
            fmt(level.get("added_p50_ms"), "{:.2f}") + " / " +
            fmt(level.get("added_p99_ms"), "{:.2f}"),
            "without --redis_url: " + fmt(level.get("without_redis_p50_ms"), "{:.2f}") + " / " +
            fmt(level.get("without_redis_p99_ms"), "{:.2f}"))
    row("scale-out", "Redis take script alone p50 / p99 (ms)",
        fmt(get(scaleout, "redis_trytake", "p50_ms"), "{:.3f}") + " / " +
        fmt(get(scaleout, "redis_trytake", "p99_ms"), "{:.3f}"))

    # Redis frozen (SIGSTOP) under a flood on two replicas, then SIGCONT.
    limit_n = None
    if get(freeze, "limit"):
        limit_n = int(get(freeze, "limit").split("/")[0])
    windows = [get(freeze, p, "max_admissions_in_window") for p in ("before", "during", "after")]
    row("redis freeze", "%s s frozen: most admissions in 1 window before / during / after" %
        fmt(get(freeze, "freeze_s")), " / ".join(fmt(w) for w in windows), "limit " + fmt(limit_n),
        "<= limit: " + goal(None if None in windows or limit_n is None else max(windows),
                            lambda v: v <= limit_n))
    failed = [get(freeze, p, "calls_failed") for p in ("before", "during", "after")]
    row("redis freeze", "calls failed, upstream 429s",
        fmt(None if None in failed else sum(failed)) + ", " + fmt(get(freeze, "upstream_429")), "",
        "0, 0")
    row("redis freeze", "call latency p99 during the freeze (ms)",
        fmt(get(freeze, "during", "latency_p99_ms")),
        "before " + fmt(get(freeze, "before", "latency_p99_ms")))

    # Callers sharing a lane by priority and weight (issue 17).
    heavy = get(shares, "heavy_share")
    row("shares", "batch weights 3:1 flooding %s: shares" % (get(shares, "limit") or "n/a"),
        "n/a" if heavy is None else "%.1f%% / %.1f%%" % (100 * heavy, 100 - 100 * heavy), "",
        "75 / 25 +-5: " + goal(heavy, lambda v: 0.70 <= v <= 0.80))
    ui_goal = get(shares, "ui_wait_goal_ms")
    row("shares", "interactive call's wait during that flood, p99 (ms)",
        fmt(get(shares, "ui_wait_p99_ms")), "p50 " + fmt(get(shares, "ui_wait_p50_ms")),
        "<= %s: " % fmt(ui_goal) +
        goal(get(shares, "ui_wait_p99_ms"), lambda v: ui_goal is not None and v <= ui_goal))
    row("shares", "batch share under an interactive flood",
        fmt(get(shares, "batch_share_under_interactive_flood"), "{:.1%}"), "",
        ">= 10%: " + goal(get(shares, "batch_share_under_interactive_flood"),
                          lambda v: v >= 0.095))
    row("shares", "upstream 429s", fmt(get(shares, "upstream_429")), "", "0")

    # 5. Memory: the gateway's RSS idle and after each scenario (each starts its own gateway).
    for name, idle, after in [
        ("proxy", get(proxy, "gateway_rss_kb", "before"), get(proxy, "gateway_rss_kb", "after")),
        ("cache (100k keys)", get(cache, "distinct_keys", "rss_before_kb"),
         get(cache, "distinct_keys", "rss_after_kb")),
        ("concurrency (peak)", get(concurrency, "rss_idle_kb"), get(concurrency, "rss_peak_kb")),
        ("parked calls (waiting)", get(queued, "rss_idle_kb"), get(queued, "rss_waiting_kb")),
    ]:
        row("5 memory", "gateway RSS (MB): " + name, fmt(mb(after), "{:.1f}"),
            "idle " + fmt(mb(idle), "{:.1f}"))

    # Memory budget (issue 18): a flood of parked calls against --max_memory.
    budget = get(memory, "budget_bytes")
    budget_mb = None if budget is None else budget / 1048576.0
    row("memory budget", "%s calls on %s lanes: peak RSS (MB)" %
        (fmt(get(memory, "calls")), fmt(get(memory, "lanes"))),
        fmt(mb(get(memory, "rss_peak_kb")), "{:.1f}"),
        "idle " + fmt(mb(get(memory, "rss_idle_kb")), "{:.1f}") + ", budget " +
        fmt(budget_mb, "{:.0f}"),
        "< budget: " + goal(get(memory, "rss_peak_kb"),
                            lambda v: budget_mb is not None and v / 1024.0 < budget_mb),
        why="each accepted call is charged what bench_memory measured it to cost "
        "(service/common/memory_budget.h, CallCosts); a peak over the budget means a call costs "
        "more than it is charged on this build or machine: re-measure (RSS per parked call, "
        "below) and raise the charge")
    row("memory budget", "calls parked / refused",
        fmt(get(memory, "parked")) + " / " + fmt(get(memory, "refused")))
    hp99 = get(memory, "health_p99_ms")
    row("memory budget", "health during the flood p50 / p99 / max (ms)",
        fmt(get(memory, "health_p50_ms"), "{:.1f}") + " / " + fmt(hp99, "{:.1f}") + " / " +
        fmt(get(memory, "health_max_ms"), "{:.1f}"), "",
        "p99 < 1000: " + goal(hp99, lambda v: v < 1000),
        why="a probe waits behind the flood's incoming calls for CPU, not for memory (same p99 "
        "without the bound); met at load ~3, not when other jobs load the machine")
    kp = get(memory, "kb_per_parked_call")
    row("memory budget", "RSS per parked call (KB)", fmt(kp, "{:.1f}"), "idle RSS, same run",
        "<= 8: " + goal(kp, lambda v: v <= 8),
        why="not reachable by the gateway: gRPC alone holds a call in ~16 KB (the floor row); the "
        "gateway's own ~3 KB is its planned request, exchange, waiter and reactor")
    row("memory budget", "gateway excess per parked call over gRPC alone (KB)",
        fmt(get(memory, "floor", "gateway_excess_kb_per_call"), "{:.1f}"),
        "gRPC floor (bench_memory_floor) " +
        fmt(get(memory, "floor", "kb_per_held_call"), "{:.1f}") + " KB per held call")
    kf = get(memory, "in_flight", "kb_per_call")
    row("memory budget", "RSS per call in flight (KB)", fmt(kf, "{:.1f}"), "idle RSS, same run",
        "<= 16: " + goal(kf, lambda v: v <= 16),
        why="not reachable: gRPC's ~15 KB per held call plus libcurl's transfer (~15 KB RSS, "
        "28.7 KB heap: its receive buffer)")
    row("memory budget", "gateway excess per call in flight over gRPC alone (KB)",
        fmt(get(memory, "in_flight", "floor", "gateway_excess_kb_per_call"), "{:.1f}"),
        "gRPC floor (bench_memory_floor) " +
        fmt(get(memory, "in_flight", "floor", "kb_per_held_call"), "{:.1f}") +
        " KB per held call")

    widths = [max(len(str(r[i])) for r in rows + [("scenario", "figure", "value", "baseline",
                                                   "goal")]) for i in range(5)]
    header = ("scenario", "figure", "value", "baseline (same run)", "goal")
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    if why_not:
        print("\nGoals not met: the measured reason, and the next step")
        for i, why in why_not.items():
            print("- %s, %s: %s" % (rows[i][0], rows[i][1], why))

    summary = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "system": platform.platform()},
        "rows": [dict(zip(("scenario", "figure", "value", "baseline", "goal"), r),
                      **({"why_not_met": why_not[i]} if i in why_not else {}))
                 for i, r in enumerate(rows)],
        "raw": {"proxy": proxy, "cache": cache, "ratelimit": ratelimit,
                "concurrency": concurrency, "scaleout": scaleout, "freeze": freeze,
                "translate": translate, "shares": shares, "memory": memory, "hits": hits,
                "hops": hops},
    }
    with open(os.path.join(directory, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    print("\nwritten: " + os.path.join(directory, "summary.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
