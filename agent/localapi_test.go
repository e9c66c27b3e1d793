package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"cellagent/agent/ratelimit"
	"cellagent/agent/store"
	"cellagent/modem/sms"
	"cellagent/transport/localapi"
)

// GET /v1/status returns the agent's Status: the API page's example must
// decode strictly into it.
func TestAPIStatusExample(t *testing.T) {
	doc, err := os.ReadFile("../transport/localapi/API.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- example: status -->\n```json\n(.*?)\n```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("API.md has no status example")
	}
	dec := json.NewDecoder(strings.NewReader(string(m[1])))
	dec.DisallowUnknownFields()
	var st Status
	if err := dec.Decode(&st); err != nil {
		t.Fatalf("status example: %v", err)
	}
	if st.DeviceID == "" || st.Modem == nil || st.Health == nil {
		t.Fatalf("status example lacks device id, modem or health: %+v", st)
	}
}

func TestAPIErrorKinds(t *testing.T) {
	for _, c := range []struct {
		err  error
		kind error
	}{
		{fmt.Errorf("outbox: %w", sms.ErrInvalidNumber), localapi.ErrBadRequest},
		{fmt.Errorf("x: %w", ErrKeyReused), localapi.ErrConflict},
		{fmt.Errorf("x: %w", ErrRefused), localapi.ErrForbidden},
		{fmt.Errorf("x: %w", ratelimit.ErrLimited), localapi.ErrLimited},
		{fmt.Errorf("outbox: %w", store.ErrFull), localapi.ErrUnavailable},
		{fmt.Errorf("x: %w", ErrNoSession), localapi.ErrUnavailable},
		{fmt.Errorf("get: %w", store.ErrNotFound), localapi.ErrNotFound},
	} {
		if got := apiError(c.err); !errors.Is(got, c.kind) || !strings.Contains(got.Error(), c.err.Error()) {
			t.Errorf("apiError(%v) = %v, want %v keeping the message", c.err, got, c.kind)
		}
	}
	plain := errors.New("disk on fire")
	if got := apiError(plain); got != plain {
		t.Errorf("apiError(plain) = %v", got)
	}
}
