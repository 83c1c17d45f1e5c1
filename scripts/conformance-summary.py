#!/usr/bin/env python3
"""Summarizes an Autobahn|Testsuite fuzzingclient report (its index.json).

    conformance-summary.py INDEX_JSON [--agent NAME] [--markdown FILE]

Prints one row per section (the first number of the case id) with the count
of each outcome, then every case that is neither OK nor INFORMATIONAL.
Exits 1 if any case is NON-STRICT, FAILED or UNIMPLEMENTED, 0 if none is,
2 if the report cannot be read or holds no case.

Each case of index.json has two verdicts: "behavior" (what the server sent
back) and "behaviorClose" (how the connection ended). The suite's own HTML
report shows both side by side; a case counts here as the worse of the two:

    behavior       OK, INFORMATIONAL, NON-STRICT, UNIMPLEMENTED as named;
                   FAILED and anything else (NO_CLOSE) as FAILED
    behaviorClose  OK, INFORMATIONAL as named; WRONG CODE (a close code the
                   case does not expect) and FAILED BY CLIENT (the suite had
                   to drop TCP, a SHOULD of RFC 6455) as NON-STRICT;
                   UNCLEAN and FAILED as FAILED

and the order, best first, is OK, INFORMATIONAL, NON-STRICT, UNIMPLEMENTED,
FAILED. A case whose behavior is UNIMPLEMENTED (the server declined the
extension the case needs) counts as UNIMPLEMENTED whatever its close, as the
suite's report shows it: one "Unimplemented" cell.
"""
import argparse
import json
import sys

OUTCOMES = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
RANK = {"OK": 0, "INFORMATIONAL": 1, "NON-STRICT": 2, "UNIMPLEMENTED": 3, "FAILED": 4}
BEHAVIOR = {"OK": "OK", "INFORMATIONAL": "INFORMATIONAL", "NON-STRICT": "NON-STRICT",
            "UNIMPLEMENTED": "UNIMPLEMENTED", "FAILED": "FAILED"}
BEHAVIOR_CLOSE = {"OK": "OK", "INFORMATIONAL": "INFORMATIONAL", "WRONG CODE": "NON-STRICT",
                  "FAILED BY CLIENT": "NON-STRICT", "UNCLEAN": "FAILED", "FAILED": "FAILED"}
BAD = ("NON-STRICT", "FAILED", "UNIMPLEMENTED")


def case_key(case_id):
    return tuple(int(p) if p.isdigit() else p for p in case_id.split("."))


def outcome(case):
    b = BEHAVIOR.get(case.get("behavior"), "FAILED")
    if b == "UNIMPLEMENTED":
        return b
    c = BEHAVIOR_CLOSE.get(case.get("behaviorClose"), "FAILED")
    return b if RANK[b] >= RANK[c] else c


def main(argv):
    ap = argparse.ArgumentParser(description="Summarizes an Autobahn fuzzingclient index.json.")
    ap.add_argument("index")
    ap.add_argument("--agent", help="the agent to count (default: the only one)")
    ap.add_argument("--markdown", help="also write the table as Markdown to this file")
    opts = ap.parse_args(argv[1:])
    args = [opts.index]
    agent = opts.agent
    markdown = opts.markdown
    try:
        with open(args[0], encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        print(f"conformance: cannot read {args[0]}: {e}", file=sys.stderr)
        return 2
    if agent is None:
        if len(index) != 1:
            print(f"conformance: {args[0]} has agents {sorted(index)}; name one with --agent",
                  file=sys.stderr)
            return 2
        agent = next(iter(index))
    cases = index.get(agent, {})
    if not cases:
        print(f"conformance: no case for agent {agent!r} in {args[0]}", file=sys.stderr)
        return 2

    sections = {}
    totals = dict.fromkeys(OUTCOMES, 0)
    listed = []
    for cid in sorted(cases, key=case_key):
        case = cases[cid]
        o = outcome(case)
        sec = int(cid.split(".")[0])
        sections.setdefault(sec, dict.fromkeys(OUTCOMES, 0))[o] += 1
        totals[o] += 1
        if o not in ("OK", "INFORMATIONAL"):
            listed.append((cid, o, case))

    head = ["section"] + OUTCOMES + ["cases"]
    rows = [[str(s)] + [str(sections[s][o]) for o in OUTCOMES] + [str(sum(sections[s].values()))]
            for s in sorted(sections)]
    rows.append(["all"] + [str(totals[o]) for o in OUTCOMES] + [str(sum(totals.values()))])
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in [head] + rows]
    print(f"Autobahn fuzzingclient, agent {agent}: {sum(totals.values())} cases")
    print("\n".join(lines))

    if listed:
        print(f"\nnot OK or INFORMATIONAL ({len(listed)}):")
        unimpl = [cid for cid, o, _ in listed if o == "UNIMPLEMENTED"]
        for cid, o, case in listed:
            if o == "UNIMPLEMENTED":
                continue
            print(f"  {cid:10} {o:13} behavior={case.get('behavior')} "
                  f"behaviorClose={case.get('behaviorClose')} "
                  f"remoteCloseCode={case.get('remoteCloseCode')} ({case.get('reportfile')})")
        if unimpl:
            print(f"  UNIMPLEMENTED ({len(unimpl)}):")
            line = "   "
            for cid in unimpl:
                if len(line) + len(cid) + 1 > 78:
                    print(line)
                    line = "   "
                line += " " + cid
            print(line)

    if markdown:
        with open(markdown, "w", encoding="utf-8") as f:
            f.write("| " + " | ".join(head) + " |\n")
            f.write("|" + " --- |" * len(head) + "\n")
            for r in rows:
                if r[0] == "all":
                    r = ["**all**"] + [f"**{c}**" for c in r[1:]]
                f.write("| " + " | ".join(r) + " |\n")

    bad = sum(totals[o] for o in BAD)
    verdict = "PASS" if bad == 0 else "FAIL"
    print(f"\nconformance: {verdict}: " + ", ".join(f"{totals[o]} {o}" for o in OUTCOMES))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
