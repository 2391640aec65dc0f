"""Reference values for Chorus's statistics (DESIGN §5), from SciPy and statsmodels.

Writes tests/reference/stats.json; the Rust test suite compares every figure the server
computes against it, so the tests need no Python. Regenerate with

    scripts/stats-reference.sh

Every definition here is the library call (or, where no single call exists, the formula spelled
out with SciPy's distributions) that DESIGN §5 names. Cases cover 10 to 10^8 trials per variant,
lopsided splits, rates near 0 and 1, zero and all successes, and more than two variants.
"""

import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import scipy
import statsmodels
from scipy import integrate, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

Z975 = stats.norm.ppf(0.975)
# quad warns about roundoff on the sharply peaked posteriors; check_quadrature verifies them.
warnings.filterwarnings("ignore", category=integrate.IntegrationWarning)


def wilson(successes, trials):
    lo, hi = proportion_confint(successes, trials, alpha=0.05, method="wilson")
    return [float(lo), float(hi)]


def beta_window(a, b, k=40.0):
    """Where Beta(a, b) has its mass: mean +- k sd, clipped to [0, 1]."""
    mean = a / (a + b)
    sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    return max(0.0, mean - k * sd), min(1.0, mean + k * sd)


def prob_greater(av, bv, ac, bc):
    """P(X_v > X_c) for independent Beta posteriors, by adaptive quadrature of f_v * F_c."""
    lo, hi = beta_window(av, bv)
    value, _ = integrate.quad(
        lambda x: stats.beta.pdf(x, av, bv) * stats.beta.cdf(x, ac, bc),
        lo,
        hi,
        epsabs=1e-13,
        epsrel=1e-12,
        limit=2000,
        points=[av / (av + bv)],
    )
    return float(value)


def prob_best(arms):
    """P(arm i has the largest rate) under Beta(1 + s, 1 + f) posteriors."""
    out = []
    for i, (ai, bi) in enumerate(arms):
        others = [arm for j, arm in enumerate(arms) if j != i]
        lo, hi = beta_window(ai, bi)

        def integrand(x):
            value = stats.beta.pdf(x, ai, bi)
            for a, b in others:
                value *= stats.beta.cdf(x, a, b)
            return value

        value, _ = integrate.quad(
            integrand, lo, hi, epsabs=1e-13, epsrel=1e-12, limit=2000, points=[ai / (ai + bi)]
        )
        out.append(float(value))
    return out


def relative_lift(sv, nv, sc, nc):
    pv, pc = sv / nv, sc / nc
    if pc == 0:
        return None, None
    lift = (pv - pc) / pc
    a = pv * (1 - pv) / nv / pc**2
    b = pv**2 * pc * (1 - pc) / nc / pc**4
    if a + b == 0:
        return lift, [lift, lift]
    denominator = (a**2 / (nv - 1) if a > 0 else 0.0) + (b**2 / (nc - 1) if b > 0 else 0.0)
    dof = (a + b) ** 2 / denominator
    half = stats.t.ppf(0.975, dof) * math.sqrt(a + b)
    return lift, [lift - half, lift + half]


def pooled_z_p(sv, nv, sc, nc):
    pooled = (sv + sc) / (nv + nc)
    if pooled in (0.0, 1.0):
        return 1.0  # no variation at all: nothing to test
    _, p = proportions_ztest([sv, sc], [nv, nc], alternative="two-sided")
    return float(p)


def proportions_case(name, variants, control=0, weights=None):
    """variants: [(name, trials, successes)]; control: index of the control."""
    cn, cs = variants[control][1], variants[control][2]
    rows, p_values = [], []
    for i, (vname, n, s) in enumerate(variants):
        row = {"name": vname, "rate": s / n, "rate_ci95": wilson(s, n)}
        if i != control:
            low, high = confint_proportions_2indep(s, n, cs, cn, method="wald", compare="diff")
            lift, lift_ci = relative_lift(s, n, cs, cn)
            row.update(
                diff=s / n - cs / cn,
                diff_ci95=[float(low), float(high)],
                p_value=pooled_z_p(s, n, cs, cn),
                relative_lift=lift,
                relative_lift_ci95=lift_ci,
                chance_to_beat_control=prob_greater(1 + s, 1 + n - s, 1 + cs, 1 + cn - cs),
            )
            p_values.append(row["p_value"])
        rows.append(row)
    holm = multipletests(p_values, method="holm")[1]
    bh = multipletests(p_values, method="fdr_bh")[1]
    k = 0
    for i, row in enumerate(rows):
        if i != control:
            row["holm_p_value"], row["bh_p_value"] = float(holm[k]), float(bh[k])
            k += 1

    table = np.array([[s, n - s] for _, n, s in variants], dtype=float)
    if (table.sum(axis=0) == 0).any():
        chi = {"statistic": 0.0, "dof": len(variants) - 1, "p_value": 1.0}
    else:
        statistic, p, dof, _ = stats.chi2_contingency(table, correction=False)
        chi = {"statistic": float(statistic), "dof": int(dof), "p_value": float(p)}

    trials = np.array([n for _, n, _ in variants], dtype=float)
    w = np.array(weights if weights else [1.0] * len(variants), dtype=float)
    expected = trials.sum() * w / w.sum()
    srm_stat, srm_p = stats.chisquare(trials, expected)
    return {
        "name": name,
        "request": {
            "control": variants[control][0],
            "variants": [
                {"name": n, "trials": t, "successes": s}
                | ({"weight": weights[i]} if weights else {})
                for i, (n, t, s) in enumerate(variants)
            ],
        },
        "expected": {
            "variants": rows,
            "chi_square": chi,
            "srm": {"statistic": float(srm_stat), "p_value": float(srm_p)},
        },
    }


def means_case(name, variants, control=0):
    """variants: [(name, n, mean, sd)]."""
    _, cn, cm, csd = variants[control]
    rows = []
    for i, (vname, n, m, sd) in enumerate(variants):
        row = {"name": vname}
        if i != control:
            t, p = stats.ttest_ind_from_stats(m, sd, n, cm, csd, cn, equal_var=False)
            a, b = sd**2 / n, csd**2 / cn
            dof = (a + b) ** 2 / (a**2 / (n - 1) + b**2 / (cn - 1))
            half = stats.t.ppf(0.975, dof) * math.sqrt(a + b)
            row.update(
                diff=m - cm,
                diff_ci95=[m - cm - half, m - cm + half],
                dof=float(dof),
                t=float(t),
                p_value=float(p),
            )
        rows.append(row)
    return {
        "name": name,
        "request": {
            "control": variants[control][0],
            "variants": [{"name": v[0], "n": v[1], "mean": v[2], "sd": v[3]} for v in variants],
        },
        "expected": {"variants": rows},
    }


def special_values():
    """Distribution tails on their own, where a weak implementation would show first."""
    t_sf = []
    for dof in [1.0, 2.5, 7.0, 30.0, 1e3, 1e5, 1e7, 2e8]:
        for t in [0.01, 0.7, 1.96, 4.0, 12.0, 40.0]:
            t_sf.append({"dof": dof, "t": t, "sf": float(stats.t.sf(t, dof))})
    t_ppf = [
        {"dof": dof, "q": 0.975, "ppf": float(stats.t.ppf(0.975, dof))}
        for dof in [1.0, 1.5, 3.0, 9.9, 60.0, 1e4, 1e6, 1e9]
    ]
    chi2_sf = []
    for dof in [1, 2, 3, 4, 7, 12, 19]:
        for x in [1e-3, 0.5, 3.0, 20.0, 150.0, 900.0, 1400.0]:
            chi2_sf.append({"dof": dof, "x": x, "sf": float(stats.chi2.sf(x, dof))})
    normal_two_sided = [
        {"z": z, "p": float(2 * stats.norm.sf(abs(z)))} for z in [0.0, 0.3, 1.96, 5.0, 9.0, 20.0, 37.0]
    ]
    return {"t_sf": t_sf, "t_ppf": t_ppf, "chi2_sf": chi2_sf, "normal_two_sided": normal_two_sided}


def proportion_cases():
    cases = []
    # The same pair of rates at every scale.
    for n in [10, 100, 10**3, 10**4, 10**5, 10**6, 10**7, 10**8]:
        cases.append(
            proportions_case(
                f"rates 0.30 vs 0.33 at {n}",
                [("control", n, round(0.30 * n)), ("treatment", n, round(0.33 * n))],
            )
        )
    for n in [10, 1000, 10**6, 10**8]:
        cases.append(proportions_case(f"zero vs one success at {n}", [("A", n, 0), ("B", n, 1)]))
        cases.append(proportions_case(f"all vs all-but-one at {n}", [("A", n, n), ("B", n, n - 1)]))
        cases.append(proportions_case(f"zero vs zero at {n}", [("A", n, 0), ("B", n, 0)]))
        cases.append(proportions_case(f"all vs all at {n}", [("A", n, n), ("B", n, n)]))
        cases.append(
            proportions_case(f"rare events at {n}", [("A", n, max(1, n // 10**4)), ("B", n, 2 * max(1, n // 10**4))])
        )
    cases += [
        proportions_case("lopsided 10^8 control vs 10 variant", [("control", 10**8, 12_345_678), ("tiny", 10, 3)]),
        proportions_case("lopsided 10 control vs 10^8 variant", [("control", 10, 4), ("huge", 10**8, 41_000_000)]),
        proportions_case("lopsided 10^6 vs 10^3, near 1", [("control", 10**6, 999_000), ("v", 10**3, 997)]),
        proportions_case("huge effect at 10^7", [("control", 10**7, 10**6), ("v", 10**7, 2 * 10**6)]),
        proportions_case("tiny effect at 10^8", [("control", 10**8, 50_000_000), ("v", 10**8, 50_010_000)]),
        proportions_case(
            "four variants, control second",
            [
                ("v1", 5_000, 510),
                ("control", 5_000, 500),
                ("v2", 4_800, 560),
                ("v3", 5_100, 455),
            ],
            control=1,
        ),
        proportions_case(
            "three variants with a sample ratio mismatch",
            [("control", 10_000, 1_000), ("a", 10_500, 1_050), ("b", 9_300, 980)],
        ),
        proportions_case(
            "weighted 80/10/10 split",
            [("control", 80_050, 4_000), ("a", 9_990, 530), ("b", 10_010, 470)],
            weights=[0.8, 0.1, 0.1],
        ),
        proportions_case(
            "six variants at 10^5",
            [(f"v{i}", 100_000 + 37 * i, 20_000 + 150 * i * (-1) ** i) for i in range(6)],
        ),
    ]
    return cases


def mean_cases():
    return [
        means_case("small samples", [("control", 10, 3.2, 1.1), ("v", 12, 3.9, 1.6)]),
        means_case("unequal variances", [("control", 40, 100.0, 5.0), ("v", 8, 104.0, 25.0)]),
        means_case("large samples", [("control", 10**6, 12.0, 4.0), ("v", 10**6, 12.01, 4.1)]),
        means_case("huge samples", [("control", 10**8, 0.5, 0.2), ("v", 10**8, 0.50001, 0.2)]),
        means_case("lopsided", [("control", 10**7, 2.0, 1.0), ("v", 5, 2.6, 0.4)]),
        means_case("far apart", [("control", 500, 1.0, 0.1), ("v", 500, 1.5, 0.1)]),
        means_case("one sd zero", [("control", 30, 5.0, 0.0), ("v", 30, 5.4, 1.0)]),
        means_case(
            "three variants",
            [("a", 200, 3.0, 1.0), ("control", 210, 3.1, 1.2), ("c", 190, 2.7, 0.9)],
            control=1,
        ),
    ]


def bandit_cases():
    cases = [
        [(1, 1), (1, 1)],
        [(3, 9), (5, 7)],
        [(1, 11), (2, 10), (1, 1), (40, 60)],
        [(101, 901), (120, 882), (95, 907), (110, 892)],
        [(1 + 5_000, 1 + 95_000), (1 + 5_100, 1 + 94_900), (1 + 4_900, 1 + 95_100)],
        [(1 + 200_000, 1 + 800_000), (1 + 200_400, 1 + 799_600)],
        [(1 + 30_000_000, 1 + 70_000_000), (1 + 30_004_000, 1 + 69_996_000), (1 + 29_990_000, 1 + 70_010_000)],
        [(1, 10**8 + 1), (2, 10**8)],
    ]
    return [{"arms": [{"alpha": a, "beta": b} for a, b in arms], "probability_best": prob_best(arms)} for arms in cases]


def check_quadrature(data):
    """The posterior probabilities come from numerical integration: check them two ways."""
    for case in data["proportions"]:
        request = case["request"]
        control = next(v for v in request["variants"] if v["name"] == request["control"])
        cs, cn = control["successes"], control["trials"]
        for variant, row in zip(request["variants"], case["expected"]["variants"]):
            if variant is control:
                continue
            s, n = variant["successes"], variant["trials"]
            other_way = 1 - prob_greater(1 + cs, 1 + cn - cs, 1 + s, 1 + n - s)
            assert abs(other_way - row["chance_to_beat_control"]) < 1e-8, case["name"]
    for case in data["bandit"]:
        assert abs(sum(case["probability_best"]) - 1) < 1e-8, case


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("stats.json"))
    data = {
        "generated_by": "tests/reference/stats_reference.py",
        "versions": {"scipy": scipy.__version__, "statsmodels": statsmodels.__version__, "numpy": np.__version__},
        "z_975": float(Z975),
        "special": special_values(),
        "proportions": proportion_cases(),
        "means": mean_cases(),
        "bandit": bandit_cases(),
    }
    check_quadrature(data)
    out.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
    print(f"wrote {out}: {len(data['proportions'])} proportion cases, {len(data['means'])} mean cases, "
          f"{len(data['bandit'])} bandit cases")


if __name__ == "__main__":
    main()
