package agent

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"testing"

	"cellagent/agent/bearer"
	"cellagent/agent/nettime"
)

// The data path's part of status.json, as README.md shows it, decodes
// strictly into what the agent writes.
func TestStatusDataPathExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- example: status.json data path -->\n```json\n(.*?)\n```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no status.json data path example")
	}
	var st struct {
		Network     *NetworkStatus   `json:"network"`
		Bearer      *bearer.Snapshot `json:"bearer"`
		NetworkTime *nettime.Status  `json:"network_time"`
	}
	dec := json.NewDecoder(bytes.NewReader(m[1]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Network == nil || len(st.Network.Settings) != 3 || st.Bearer == nil || st.Bearer.State != bearer.StateUp ||
		st.Bearer.RxBytes != 48213 || st.NetworkTime == nil || st.NetworkTime.ZoneMinutes != 60 {
		t.Errorf("decoded %+v %+v %+v", st.Network, st.Bearer, st.NetworkTime)
	}
}
