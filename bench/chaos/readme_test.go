package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSpliceKeepsTextOutsideTheMarkers(t *testing.T) {
	handBefore := "# Resilience\n\nHow it is measured, by hand.\n\n"
	handAfter := "\n### Re-run by hand\n\n| a | b |\n"
	doc := handBefore + beginMarker + "\nold table\n" + endMarker + handAfter
	got, err := splice(doc, "new table\n")
	if err != nil {
		t.Fatal(err)
	}
	want := handBefore + beginMarker + "\nnew table\n" + endMarker + handAfter
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	again, err := splice(got, "newer table")
	if err != nil {
		t.Fatal(err)
	}
	if want := handBefore + beginMarker + "\nnewer table\n" + endMarker + handAfter; again != want {
		t.Fatalf("second run: got\n%s\nwant\n%s", again, want)
	}
}

func TestSpliceRefusesADocumentItDidNotMark(t *testing.T) {
	for name, doc := range map[string]string{
		"no markers":       "# Resilience\n\nwritten by hand\n",
		"begin only":       "a\n" + beginMarker + "\nb\n",
		"end only":         "a\n" + endMarker + "\nb\n",
		"end before begin": endMarker + "\n" + beginMarker + "\n",
		"two regions":      beginMarker + "\n" + endMarker + "\n" + beginMarker + "\n" + endMarker + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			if got, err := splice(doc, "table"); err == nil {
				t.Fatalf("no error; would write\n%s", got)
			}
		})
	}
}

func TestWriteRegion(t *testing.T) {
	dir := t.TempDir()
	t.Run("new file", func(t *testing.T) {
		path := filepath.Join(dir, "new.md")
		if err := writeRegion(path, "table\n"); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		if want := beginMarker + "\ntable\n" + endMarker + "\n"; string(got) != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
	t.Run("unmarked file left as it was", func(t *testing.T) {
		path := filepath.Join(dir, "hand.md")
		hand := "# written by hand\n"
		if err := os.WriteFile(path, []byte(hand), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := writeRegion(path, "table\n"); err == nil {
			t.Fatal("no error")
		}
		if got, _ := os.ReadFile(path); string(got) != hand {
			t.Fatalf("file changed to %q", got)
		}
	})
}

// The summary follows the rows: a row that missed its target is never
// reported met, whatever the scenario.
func TestSummaryFollowsTheRows(t *testing.T) {
	t5 := scenarioByID(t, "T5")
	t1 := scenarioByID(t, "T1")
	rows := []row{
		{registry: "consul", mode: "shipped", sc: t1},
		{registry: "etcd", mode: "shipped", sc: t1, outcome: outcome{failures: []string{"3 failed"}}},
		{registry: "consul", mode: "shipped", sc: t5, outcome: outcome{failures: []string{"opened after 22 failures"}}},
		{registry: "etcd", mode: "shipped", sc: t5, err: errors.New("start user: boom")},
		{registry: "consul", mode: "plain", sc: t1},
	}
	got := summary(rows)
	for _, want := range []string{
		"met 1 of 4 targets",
		"etcd T1 (3 failed)",
		"consul T5 (opened after 22 failures)",
		"etcd T5 (error: start user: boom)",
		"- T1 rolling restart, target 0 failed. shipped: met with consul, **missed** with etcd (3 failed); plain go-micro: met with consul.",
		"shipped: **missed** with consul (opened after 22 failures), **missed** with etcd (error: start user: boom).",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "T6") {
		t.Errorf("summary names a scenario that did not run:\n%s", got)
	}
}

func TestOpenedAfter(t *testing.T) {
	at := time.Unix(0, 0)
	var fs []result
	for i := range 19 { // one call every 2 ms, each failing after 3 ms
		fs = append(fs, result{at: at.Add(time.Duration(i) * 2 * time.Millisecond), latency: 3 * time.Millisecond, kind: "service 500"})
	}
	// The 16th returned at 33 ms: the 17th (32 ms) was in flight, the 18th
	// and 19th (34, 36 ms) were sent after it.
	if got, want := openedAfter(fs, 16), "opened after 19 failures (volume 16, 1 in flight, 2 sent later)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := openedAfter(fs[:16], 16), "opened after 16 failures (volume 16)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func scenarioByID(t *testing.T, id string) scenario {
	for _, sc := range scenarios {
		if sc.id == id {
			return sc
		}
	}
	t.Fatalf("no scenario %s", id)
	return scenario{}
}

// make chaos writes into docs/resilience.md: it must have one region.
func TestResilienceDocHasOneRegion(t *testing.T) {
	doc, err := os.ReadFile("../../docs/resilience.md")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := splice(string(doc), "table"); err != nil {
		t.Fatal(err)
	}
	if _, err := spliceBetween(string(doc), "table", haBeginMarker, haEndMarker); err != nil {
		t.Fatal(err)
	}
}
