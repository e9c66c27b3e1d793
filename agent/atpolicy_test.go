package agent

import "testing"

func TestATRefusal(t *testing.T) {
	for _, c := range []struct {
		cmd     string
		refused bool
	}{
		{"AT", false},
		{"AT+CSQ", false},
		{"at+qcsq", false},
		{"AT+COPS?", false},
		{"AT+CFUN?", false},
		{"AT+CFUN=?", false},
		{`AT+QCFG="band"`, true},
		{"AT+CMGF?", false},
		{"ATI", false},
		{"ATE0", false},
		{"ATE1", true},
		{"ate1", true},
		{"AT+CMGF=1", true},
		{"AT+CMGF=0", true},
		{"AT+CFUN=1,1", true},
		{"AT+CFUN=0", true},
		{"AT+QPOWD=1", true},
		{"AT+QPOWD", true},
		{"AT+CMGD=1,4", true},
		{"AT+CNMI=2,1", true},
		{"AT+CSQ;+CFUN=0", true},
		{"ATZ", true},
		{"AT&F", true},
		{"ATS3=10", true},
		{"ATD*99#", true},
		{"AT+CPIN=1234", true},
		{"AT+CPIN?", false},
		{"CFUN=0", true},
	} {
		if got := atRefusal(c.cmd) != ""; got != c.refused {
			t.Errorf("atRefusal(%q) = %q, want refused %v", c.cmd, atRefusal(c.cmd), c.refused)
		}
	}
}
