package at

import (
	"context"
	"io"
	"log/slog"
)

// tracer logs the raw traffic at debug level. It sits between the engine
// and the port so what it shows is exactly what crossed the line, including
// bytes the engine later discards.
type tracer struct {
	rw  io.ReadWriter
	log *slog.Logger
}

func (t *tracer) Read(p []byte) (int, error) {
	n, err := t.rw.Read(p)
	if n > 0 {
		t.log.LogAttrs(context.Background(), slog.LevelDebug, "AT rx", slog.String("bytes", string(p[:n])))
	}
	return n, err
}

func (t *tracer) Write(p []byte) (int, error) {
	t.log.LogAttrs(context.Background(), slog.LevelDebug, "AT tx", slog.String("bytes", string(p)))
	return t.rw.Write(p)
}
