#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Medians and ratios of bench/results.tsv, against the issue's targets.

Each line of results.tsv: SECTION CASE VARIANT ROUND key=value... (tabs
between the first five fields). Prints, per section, the median of each
metric over the rounds, the ratios the issue asks for, and a target table.
Only measured values appear; a run with errors or no work is left out of
the medians and counted as invalid.
"""
import collections
import statistics
import os
import sys

NCPU = int(os.environ.get("NCPU", os.cpu_count() or 1))


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 5:
                continue
            sec, case, var, rnd, kv = parts[:5]
            d = {}
            for tok in kv.split():
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    try:
                        d[k] = float(v)
                    except ValueError:
                        d[k] = v
            rows.append((sec, case, var, rnd, d))
    return rows


def valid(d):
    if d.get("errors", 0) not in (0, 0.0):
        return False
    work = d.get("handshakes", d.get("ops", d.get("signs", None)))
    if work is not None and work <= 0:
        return False
    return "rate" in d and d["rate"] > 0


class Table:
    def __init__(self, rows):
        self.v = collections.defaultdict(lambda: collections.defaultdict(list))
        self.invalid = collections.Counter()
        self.runs = collections.defaultdict(list)
        for sec, case, var, _, d in rows:
            if not valid(d):
                self.invalid[(sec, case, var)] += 1
                continue
            self.runs[(sec, case, var)].append(d)
            for k, x in d.items():
                if isinstance(x, float):
                    self.v[(sec, case, var)][k].append(x)

    def med(self, sec, case, var, metric):
        xs = self.v.get((sec, case, var), {}).get(metric)
        return statistics.median(xs) if xs else None

    def med_expr(self, sec, case, var, f):
        """Median over the rounds of f(run), for metrics derived per run."""
        xs = []
        for d in self.runs.get((sec, case, var), []):
            try:
                xs.append(f(d))
            except (KeyError, ZeroDivisionError, TypeError):
                pass
        return statistics.median(xs) if xs else None

    def n(self, sec, case, var):
        xs = self.v.get((sec, case, var), {}).get("rate")
        return len(xs) if xs else 0

    def cases(self, sec):
        seen = []
        for (s, c, _v) in self.v:
            if s == sec and c not in seen:
                seen.append(c)
        for (s, c, _v) in self.invalid:
            if s == sec and c not in seen:
                seen.append(c)
        return seen


def fmt(x, nd=1):
    return "-" if x is None else f"{x:.{nd}f}"


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def main(path):
    t = Table(load(path))
    targets = []
    out = []

    def p(s=""):
        out.append(s)

    if t.cases("sign"):
        p("## (a) Key server signing throughput vs openssl speed -multi (signatures/s, medians)")
        p()
        p("| key | openssl speed | in-process (lurk-signcore) | key server (lurk-signbench) | key server cores | ratio ks/speed | ratio ks/in-process | key server signs per CPU-s / speed per core | runs |")
        p("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for k in t.cases("sign"):
            sp = t.med("sign", k, "speed", "rate")
            co = t.med("sign", k, "core", "rate")
            ks = t.med("sign", k, "ks", "rate")
            kc = t.med("sign", k, "ks", "ks_cores")
            r = ratio(ks, sp)
            ncpu = NCPU
            eff = None
            if ks and kc and sp:
                eff = (ks / kc) / (sp / ncpu)
            p(f"| {k} | {fmt(sp)} | {fmt(co)} | {fmt(ks)} | {fmt(kc, 2)} | {fmt(r, 2)} | {fmt(ratio(ks, co), 2)} | {fmt(eff, 2)} | {t.n('sign', k, 'ks')} |")
            goal = 0.90 if k == "rsa" else 0.70
            targets.append((f"key server signing {k} >= {goal:.2f} x openssl speed -multi", r, goal, ">="))
        p()

    if t.cases("hs"):
        p("## (b) Handshakes/s and latency, local key vs LURK (medians)")
        p()
        p("| server/key/TLS/conns | local hs/s | LURK hs/s | ratio | local p50 ms | LURK p50 ms | local p99 ms | LURK p99 ms | CPU µs/hs local (server) | CPU µs/hs LURK (server + key server) | CPU ratio local/LURK | extra variants | runs |")
        p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
        for c in t.cases("hs"):
            lo = t.med("hs", c, "local", "rate")
            lu = t.med("hs", c, "lurk", "rate")
            extra = []
            for (s, cc, var) in list(t.v):
                if s == "hs" and cc == c and var not in ("local", "lurk"):
                    er = t.med("hs", c, var, "rate")
                    extra.append(f"{var}: {fmt(er)} hs/s ({fmt(ratio(er, lo), 2)})")
            cl = t.med_expr("hs", c, "local", lambda d: d["srv_cores"] / d["rate"] * 1e6)
            cs = t.med_expr("hs", c, "lurk", lambda d: d["srv_cores"] / d["rate"] * 1e6)
            ck = t.med_expr("hs", c, "lurk", lambda d: d["ks_cores"] / d["rate"] * 1e6)
            cu = None if cs is None or ck is None else cs + ck
            p(f"| {c} | {fmt(lo)} | {fmt(lu)} | {fmt(ratio(lu, lo), 2)} | "
              f"{fmt(t.med('hs', c, 'local', 'p50_ms'), 3)} | {fmt(t.med('hs', c, 'lurk', 'p50_ms'), 3)} | "
              f"{fmt(t.med('hs', c, 'local', 'p99_ms'), 3)} | {fmt(t.med('hs', c, 'lurk', 'p99_ms'), 3)} | "
              f"{fmt(cl, 0)} | {fmt(cs, 0)} + {fmt(ck, 0)} | {fmt(ratio(cl, cu), 2)} | "
              f"{'; '.join(extra)} | {min(t.n('hs', c, 'local'), t.n('hs', c, 'lurk'))} |")
            if c.startswith("nginx/") and c.endswith("/c32") and "/tls1.3/" in c:
                k = c.split("/")[1]
                if k in ("rsa", "p256"):
                    goal = 0.90 if k == "rsa" else 0.70
                    targets.append((f"nginx {k} TLS 1.3, 32 conns: LURK >= {goal:.2f} x local", ratio(lu, lo), goal, ">="))
            if c.startswith("nginx/") and c.endswith("/c32") and "/tls1.2/" in c:
                k = c.split("/")[1]
                if k in ("rsa", "p256"):
                    goal = 0.90 if k == "rsa" else 0.70
                    targets.append((f"nginx {k} TLS 1.2, 32 conns: LURK >= {goal:.2f} x local", ratio(lu, lo), goal, ">="))
        p()

    if t.cases("lat"):
        p("## (c) Added handshake latency at 1 connection vs the bare nng tls+tcp round trip (medians)")
        p()
        echo = t.med("lat", "rtt", "echo", "p50_ms")
        ping = t.med("lat", "rtt", "ping", "p50_ms")
        p(f"bare nng tls+tcp round trip (echo, 200 bytes) p50: {fmt(echo, 3)} ms, p99: {fmt(t.med('lat', 'rtt', 'echo', 'p99_ms'), 3)} ms")
        ecl = t.med("lat", "rtt", "echo-client", "p50_ms")
        if ecl is not None:
            p(f"the same echo through the edges' client code (lurk_client_call_raw) p50: {fmt(ecl, 3)} ms")
        paced = t.med("lat", "rtt", "echo-paced", "p50_ms")
        if paced is not None:
            p(f"the bare echo paced at 1 request per ms (idle threads woken each time) p50: {fmt(paced, 3)} ms")
        p(f"LURK Ping round trip p50: {fmt(ping, 3)} ms")
        for c in t.cases("lat"):
            if c.startswith("sign-"):
                p(f"one Sign at a time, {c[5:]}: p50 {fmt(t.med('lat', c, 'lurk', 'p50_ms'), 3)} ms")
        p()
        p("| nginx key, TLS 1.3, 1 conn | local p50 ms | LURK p50 ms | added ms | added / echo RTT | added / paced echo RTT | runs |")
        p("|---|---:|---:|---:|---:|---:|---:|")
        for c in t.cases("lat"):
            if not c.startswith("nginx/"):
                continue
            lo = t.med("lat", c, "local", "p50_ms")
            lu = t.med("lat", c, "lurk", "p50_ms")
            add = None if lo is None or lu is None else lu - lo
            r = ratio(add, echo)
            p(f"| {c.split('/')[1]} | {fmt(lo, 3)} | {fmt(lu, 3)} | {fmt(add, 3)} | {fmt(r, 2)} | {fmt(ratio(add, paced), 2)} | {min(t.n('lat', c, 'local'), t.n('lat', c, 'lurk'))} |")
            targets.append((f"added p50 latency, nginx {c.split('/')[1]}, 1 conn <= 2 x bare RTT", r, 2.0, "<="))
        p()

    if t.cases("haproxy"):
        p("## (d) HAProxy: ssl-mode-async vs blocking, key server delay 0 / 5 ms (medians)")
        p()
        variants = ["local", "async-0ms", "async-5ms", "block-0ms", "block-5ms"]
        p("| case | " + " | ".join(f"{v} hs/s" for v in variants) + " | async 5ms/0ms | blocking 5ms/0ms | runs |")
        p("|---|" + "---:|" * (len(variants) + 3))
        for c in t.cases("haproxy"):
            r = {v: t.med("haproxy", c, v, "rate") for v in variants}
            inval = sum(t.invalid[("haproxy", c, v)] for v in variants)
            ra = ratio(r["async-5ms"], r["async-0ms"])
            p(f"| {c} | " + " | ".join(fmt(r[v]) for v in variants)
              + f" | {fmt(ra, 2)} | {fmt(ratio(r['block-5ms'], r['block-0ms']), 2)} | "
              + f"{min(t.n('haproxy', c, v) for v in variants)}{f' ({inval} invalid)' if inval else ''} |")
            targets.append((f"HAProxy async {c}: 5 ms delay >= 0.80 x no delay", ra, 0.80, ">="))
        p("")
        p("| case | " + " | ".join(f"{v} p50/p99 ms" for v in variants) + " |")
        p("|---|" + "---|" * len(variants))
        for c in t.cases("haproxy"):
            p(f"| {c} | " + " | ".join(
                f"{fmt(t.med('haproxy', c, v, 'p50_ms'), 1)} / {fmt(t.med('haproxy', c, v, 'p99_ms'), 1)}"
                for v in variants) + " |")
        p()

    if t.invalid:
        p("Invalid runs (errors or no handshake), left out of the medians: "
          + ", ".join(f"{s}/{c}/{v}: {n}" for (s, c, v), n in sorted(t.invalid.items())))
        p()

    if targets:
        p("## Targets")
        p()
        p("| target | measured | goal | met |")
        p("|---|---:|---:|---|")
        for name, val, goal, op in targets:
            if val is None:
                met = "no data"
            else:
                met = "yes" if (val >= goal if op == ">=" else val <= goal) else "NO"
            p(f"| {name} | {fmt(val, 2)} | {op} {goal:.2f} | {met} |")
        p()
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results.tsv")
