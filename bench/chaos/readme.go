package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// The report goes between these lines of the -out file; everything outside
// them is written by hand and kept as it is.
const (
	beginMarker = "<!-- chaos:begin: written by make chaos (bench/chaos); edits inside are lost -->"
	endMarker   = "<!-- chaos:end -->"
)

// The registry-cluster scenarios (T8, T9) have a region of their own, so
// that running them alone keeps the figures of the others.
const (
	haBeginMarker = "<!-- chaos-ha:begin: written by make chaos (bench/chaos), T8 and T9; edits inside are lost -->"
	haEndMarker   = "<!-- chaos-ha:end -->"
)

// writeRegion puts region between the markers of the file at path, or
// writes a new file holding only the markers and region.
func writeRegion(path, region string) error {
	return writeRegionBetween(path, region, beginMarker, endMarker)
}

// writeRegionBetween is writeRegion between the markers begin and end.
func writeRegionBetween(path, region, begin, end string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	doc, err := spliceBetween(string(old), region, begin, end)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}

// splice returns doc with the text between its markers replaced by region.
// An empty doc gets the markers. A doc without both markers, once each and
// in order, is an error: the program never overwrites text it did not write.
func splice(doc, region string) (string, error) {
	return spliceBetween(doc, region, beginMarker, endMarker)
}

// spliceBetween is splice between the markers beginMarker and endMarker.
func spliceBetween(doc, region, beginMarker, endMarker string) (string, error) {
	region = strings.TrimSuffix(region, "\n") + "\n"
	if doc == "" {
		return beginMarker + "\n" + region + endMarker + "\n", nil
	}
	nb, ne := strings.Count(doc, beginMarker), strings.Count(doc, endMarker)
	if nb != 1 || ne != 1 {
		return "", fmt.Errorf("want one %q line and one %q line, found %d and %d: add them where the report goes", beginMarker, endMarker, nb, ne)
	}
	before, rest, _ := strings.Cut(doc, beginMarker)
	_, after, ok := strings.Cut(rest, endMarker)
	if !ok {
		return "", fmt.Errorf("%q comes before %q", endMarker, beginMarker)
	}
	return before + beginMarker + "\n" + region + endMarker + after, nil
}

// summary says, per scenario, which targets this run met and missed, from
// the rows alone: a target is met when its row recorded no miss.
func summary(rows []row) string {
	var b strings.Builder
	b.WriteString("## This run in short\n\n")
	b.WriteString("Generated from the table below: a target is met when the row's measurement reached it.\n\n")
	met, total := 0, 0
	var missed []string
	for _, r := range rows {
		if r.mode != "shipped" {
			continue
		}
		total++
		if r.met() {
			met++
		} else {
			missed = append(missed, fmt.Sprintf("%s %s (%s)", r.registry, r.sc.id, r.shortfall()))
		}
	}
	if total > 0 {
		fmt.Fprintf(&b, "The starter as shipped met %d of %d targets.", met, total)
		if len(missed) > 0 {
			fmt.Fprintf(&b, " Missed: %s.", strings.Join(missed, "; "))
		}
		b.WriteString("\n\n")
	}
	for _, sc := range scenarios {
		var parts []string
		for _, mode := range []string{"shipped", "single", "plain"} {
			var each []string
			for _, r := range rows {
				if r.sc.id != sc.id || r.mode != mode {
					continue
				}
				if r.met() {
					each = append(each, "met with "+r.registry)
				} else {
					each = append(each, fmt.Sprintf("**missed** with %s (%s)", r.registry, r.shortfall()))
				}
			}
			if len(each) > 0 {
				parts = append(parts, modeLabel(sc, mode)+": "+strings.Join(each, ", "))
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(&b, "- %s %s, target %s. %s.\n", sc.id, sc.name, sc.target, strings.Join(parts, "; "))
		}
	}
	return b.String()
}

// modeLabel names a mode in the summary.
func modeLabel(sc scenario, mode string) string {
	switch {
	case mode == "shipped" && sc.ha:
		return "shipped, registry cluster"
	case mode == "single":
		return "shipped, one registry server (for comparison)"
	case mode == "plain":
		return "plain go-micro"
	}
	return mode
}
