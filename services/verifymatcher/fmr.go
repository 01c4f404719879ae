package verifymatcher

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// A false-match-rate table maps a target rate (the share of different-person pairs
// scoring at or above the threshold) to a cosine threshold, for one model. It is
// built from impostor scores measured on real templates (calibration_test.go
// regenerates it and fails when the checked-in table drifts):
//
//   - a row is measured when the impostor pairs are enough to observe the rate
//     (at least 3/rate pairs, the "rule of three"): its score is the empirical
//     quantile;
//   - otherwise it is extrapolated from a normal fit to the impostor scores, with
//     the standard deviation at its 95% upper confidence bound (so a small sample
//     errs towards higher, safer thresholds), and never below the highest
//     impostor score seen.
//
// Rates between rows are interpolated on a log scale.

type fmrRow struct {
	FMR          float64
	Score        float32
	Extrapolated bool
}

type fmrTable struct {
	ModelID       string
	ImpostorPairs int
	Mean, Std     float64
	StdUpper      float64
	MaxImpostor   float64
	Rows          []fmrRow // by decreasing FMR (increasing score)
}

// tableRates are the rows every table has.
var tableRates = []float64{1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6}

// buildTable makes the table of a model from its impostor scores.
func buildTable(modelID string, impostor []float64) fmrTable {
	s := slices.Clone(impostor)
	slices.Sort(s)
	n := float64(len(s))
	var mean, ss float64
	for _, x := range s {
		mean += x
	}
	mean /= n
	for _, x := range s {
		ss += (x - mean) * (x - mean)
	}
	std := math.Sqrt(ss / (n - 1))
	// 95% upper bound of sigma: sqrt((n-1) s^2 / chi2_{0.05, n-1}), chi2 quantile by
	// the Wilson-Hilferty approximation.
	k := n - 1
	chi := k * math.Pow(1-2/(9*k)+(-1.6448536)*math.Sqrt(2/(9*k)), 3)
	stdUp := std * math.Sqrt(k/chi)
	t := fmrTable{ModelID: modelID, ImpostorPairs: len(s), Mean: round4(mean), Std: round4(std), StdUpper: round4(stdUp), MaxImpostor: round4(s[len(s)-1])}
	for _, r := range tableRates {
		row := fmrRow{FMR: r}
		if n >= 3/r {
			// Smallest score with at most a share r of impostors at or above it.
			idx := int(math.Ceil((1 - r) * n))
			row.Score = float32(round4(s[min(idx, len(s)-1)]))
		} else {
			z := normalQuantile(1 - r)
			row.Score = float32(round4(math.Max(mean+z*stdUp, s[len(s)-1])))
			row.Extrapolated = true
		}
		t.Rows = append(t.Rows, row)
	}
	for i := 1; i < len(t.Rows); i++ { // keep scores non-decreasing as rates fall
		t.Rows[i].Score = max(t.Rows[i].Score, t.Rows[i-1].Score)
	}
	return t
}

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }

// normalQuantile is the inverse standard normal CDF (Acklam's algorithm, relative
// error below 1.2e-9).
func normalQuantile(p float64) float64 {
	a := []float64{-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00}
	b := []float64{-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01}
	c := []float64{-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00}
	d := []float64{7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00}
	const plow = 0.02425
	switch {
	case p < plow:
		q := math.Sqrt(-2 * math.Log(p))
		return (((((c[0]*q+c[1])*q+c[2])*q+c[3])*q+c[4])*q + c[5]) / ((((d[0]*q+d[1])*q+d[2])*q+d[3])*q + 1)
	case p > 1-plow:
		q := math.Sqrt(-2 * math.Log(1-p))
		return -(((((c[0]*q+c[1])*q+c[2])*q+c[3])*q+c[4])*q + c[5]) / ((((d[0]*q+d[1])*q+d[2])*q+d[3])*q + 1)
	}
	q := p - 0.5
	r := q * q
	return (((((a[0]*r+a[1])*r+a[2])*r+a[3])*r+a[4])*r + a[5]) * q / (((((b[0]*r+b[1])*r+b[2])*r+b[3])*r+b[4])*r + 1)
}

// scoreAt returns the threshold for a rate within the table's range, interpolating
// log-linearly between rows; extrapolated is true if either neighbour row is.
func (t fmrTable) scoreAt(rate float64) (float32, bool) {
	rows := t.Rows
	for i := 0; i < len(rows)-1; i++ {
		hi, lo := rows[i], rows[i+1] // hi has the larger rate
		if rate <= hi.FMR && rate >= lo.FMR {
			f := (math.Log10(hi.FMR) - math.Log10(rate)) / (math.Log10(hi.FMR) - math.Log10(lo.FMR))
			return hi.Score + float32(f)*(lo.Score-hi.Score), (f < 1 && hi.Extrapolated) || (f > 0 && lo.Extrapolated)
		}
	}
	if rate > rows[0].FMR {
		return rows[0].Score, rows[0].Extrapolated
	}
	last := rows[len(rows)-1]
	return last.Score, last.Extrapolated
}

// rateAt is the table's false-match rate at a threshold (the inverse of scoreAt),
// clamped to the table's range.
func (t fmrTable) rateAt(score float32) (float64, bool) {
	rows := t.Rows
	if score <= rows[0].Score {
		return rows[0].FMR, rows[0].Extrapolated
	}
	for i := 0; i < len(rows)-1; i++ {
		hi, lo := rows[i], rows[i+1]
		if score >= hi.Score && score <= lo.Score {
			if lo.Score == hi.Score {
				return lo.FMR, lo.Extrapolated
			}
			f := float64((score - hi.Score) / (lo.Score - hi.Score))
			return math.Pow(10, math.Log10(hi.FMR)+f*(math.Log10(lo.FMR)-math.Log10(hi.FMR))), hi.Extrapolated || lo.Extrapolated
		}
	}
	last := rows[len(rows)-1]
	return last.FMR, last.Extrapolated
}

// goSource renders the table as the Go literal kept in fmr_table.go.
func (t fmrTable) goSource() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\t{\n\t\tModelID: %q,\n\t\tImpostorPairs: %d,\n\t\tMean: %v, Std: %v, StdUpper: %v, MaxImpostor: %v,\n\t\tRows: []fmrRow{\n",
		t.ModelID, t.ImpostorPairs, t.Mean, t.Std, t.StdUpper, t.MaxImpostor)
	for _, r := range t.Rows {
		fmt.Fprintf(&b, "\t\t\t{FMR: %v, Score: %v, Extrapolated: %v},\n", r.FMR, r.Score, r.Extrapolated)
	}
	b.WriteString("\t\t},\n\t},\n")
	return b.String()
}
