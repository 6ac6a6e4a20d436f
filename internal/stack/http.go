package stack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
)

// Get gets url with c and returns the status code, having decoded the JSON
// body into v unless v is nil. c bounds the request: its Timeout is the
// caller's choice.
func Get(c *http.Client, url string, v any) (int, error) {
	code, body, err := get(c, url)
	if err != nil {
		return 0, err
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			return code, fmt.Errorf("GET %s: %d, decoding body: %w: %s", url, code, err, body)
		}
	}
	return code, nil
}

// GetJSON gets url with c, which must answer 200 OK, and decodes the JSON
// body into v unless v is nil. The error of another answer carries its
// body.
func GetJSON(c *http.Client, url string, v any) error {
	code, body, err := get(c, url)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s: %s", url, code, http.StatusText(code), bytes.TrimSpace(body))
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			return fmt.Errorf("GET %s: %w: %s", url, err, body)
		}
	}
	return nil
}

// MustGet is Get for a test.
func MustGet(tb testing.TB, c *http.Client, url string, v any) int {
	tb.Helper()
	code, err := Get(c, url, v)
	if err != nil {
		tb.Fatal(err)
	}
	return code
}

// MustGetJSON is GetJSON for a test.
func MustGetJSON(tb testing.TB, c *http.Client, url string, v any) {
	tb.Helper()
	if err := GetJSON(c, url, v); err != nil {
		tb.Fatal(err)
	}
}

func get(c *http.Client, url string) (int, []byte, error) {
	rsp, err := c.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer rsp.Body.Close()
	body, err := io.ReadAll(rsp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return rsp.StatusCode, body, nil
}
