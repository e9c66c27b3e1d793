// Package bg96emu is a Quectel BG96 simulator that serves a real pseudo-terminal.
//
// The host side (the AT engine, or a person with a terminal program) opens
// the pty slave exactly as it would open /dev/ttyUSB2 on a gateway. The
// simulator answers AT commands in the byte shapes real BG96 modems print
// (as captured in public issue threads, e.g. TinyGSM #157), emits URCs, keeps
// an SM message store, and injects faults on request. Go tests drive it
// through methods; demos drive it through scenario files (see Scenario).
//
// Shapes: echo is on after power-on and every reboot, so "AT\r" comes back
// as "AT\r\r\nOK\r\n"; info lines are "\r\n<line>[\r\n<line>...]\r\n", the
// final is "\r\n<final>\r\n", a URC is "\r\n<urc>\r\n", and the SMS prompt
// is "\r\n> " with no line end. Lines end at CR or LF (CRLF counts once).
//
// Choices where the BG96 is undocumented or no capture shows the answer:
//   - A line that does not start with AT, an unknown command or bad
//     parameters answer plain ERROR; +CME/+CMS codes are used where a real
//     modem uses them. AT+CMEE governs both: 0 gives ERROR, 1 the number,
//     2 the text. The factory default is CMEE=1, as on the BG96.
//   - SM indices start at 0, as Quectel numbers them. AT+CMGR on an empty
//     slot inside the store answers a bare OK; outside it +CMS ERROR: 321.
//   - Only PDU mode is emulated: AT+CMGF=1 is accepted, after which SMS
//     commands answer +CMS ERROR: 302.
//   - An MT message that finds the store full stays in the simulated
//     network with no URC and is delivered when a slot frees (or after
//     registration, if it arrived while unregistered), like an SMSC retry.
//     AT+CMGW into a full store answers +CMS ERROR: 322 after the PDU.
//   - AT+CMGS while unregistered answers +CMS ERROR: 331 at once instead of
//     after the BG96's long network timeout.
//   - Signal.SINR is in dB; AT+QCSQ prints it in the BG96's 1/5 dB steps
//     ((dB+20)*5, 0..250), which is why captures show values like 165.
//   - ATV0 (numeric result codes) is refused with ERROR.
package bg96emu
