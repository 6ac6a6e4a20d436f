package perf

import (
	"os"
	"testing"

	"go-micro.dev/v4/logger"
)

func TestMain(m *testing.M) {
	// go-micro logs every registration at info level; the benchmark output
	// is read by benchstat.
	logger.DefaultLogger = logger.NewLogger(logger.WithLevel(logger.ErrorLevel), logger.WithOutput(os.Stderr))
	os.Exit(m.Run())
}
