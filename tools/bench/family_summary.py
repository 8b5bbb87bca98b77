"""Medians and ratios of family_compare.sh / wire_family_compare.sh samples.

  family_summary.py SAMPLES   (lines "side family p50_us msg_per_s")
"""
import statistics
import sys

rows = [l.split() for l in open(sys.argv[1])]
med = {}
for side in ("kernel", "offload"):
    for fam in ("ipv4", "ipv6"):
        r = [x for x in rows if x[0] == side and x[1] == fam]
        med[side, fam] = (statistics.median(float(x[2]) for x in r),
                          statistics.median(float(x[3]) for x in r))
print("\nmedians          p50 us   100 B msg/s")
for k, (p, t) in med.items():
    print("%-8s %-6s %8.2f %12.0f" % (k[0], k[1], p, t))
for fam in ("ipv4", "ipv6"):
    (kp, kt), (op, ot) = med["kernel", fam], med["offload", fam]
    print("%s offload/kernel: p50 %.2f, throughput %.2f" % (fam, op / kp, ot / kt))
for side in ("kernel", "offload"):
    (p4, t4), (p6, t6) = med[side, "ipv4"], med[side, "ipv6"]
    print("%s ipv6/ipv4: p50 %.3f, throughput %.3f" % (side, p6 / p4, t6 / t4))
