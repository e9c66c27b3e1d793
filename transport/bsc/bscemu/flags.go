package bscemu

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strconv"
	"strings"
	"time"

	"cellagent/transport/bsc"
	"cellagent/transport/secret"
)

// ParseUserSpec parses a "user:passwordfile" flag value and reads the
// password with secret.Read, so simulator passwords follow the same
// rule as the agent's: files, never flags.
func ParseUserSpec(spec string) (user, password string, err error) {
	user, file, ok := strings.Cut(spec, ":")
	if !ok || user == "" || file == "" {
		return "", "", fmt.Errorf("bscemu: user %q: want user:passwordfile", spec)
	}
	if password, err = secret.Read(file); err != nil {
		return "", "", fmt.Errorf("bscemu: user %s: %w", user, err)
	}
	return user, password, nil
}

// ParseSIMSpec parses a SIM flag value:
// "ICCID[,msisdn=N][,imsi=N][,label=S][,data=500MB][,sms=250]".
// data accepts a byte count or a kB/MB/GB suffix (powers of 1024).
func ParseSIMSpec(spec string) (SIMConfig, error) {
	parts := strings.Split(spec, ",")
	sc := SIMConfig{ICCID: strings.TrimSpace(parts[0])}
	if err := bsc.ValidateICCID(sc.ICCID); err != nil {
		return SIMConfig{}, fmt.Errorf("bscemu: SIM %q: %w", spec, err)
	}
	for _, kv := range parts[1:] {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return SIMConfig{}, fmt.Errorf("bscemu: SIM %q: %q is not key=value", spec, kv)
		}
		var err error
		switch k {
		case "msisdn":
			sc.MSISDN = v
		case "imsi":
			sc.IMSI = v
		case "label":
			sc.Label = v
		case "data":
			sc.DataBytes, err = parseSize(v)
		case "sms":
			sc.SMS, err = strconv.ParseInt(v, 10, 64)
			if err == nil && sc.SMS <= 0 {
				err = errors.New("must be positive")
			}
		default:
			err = errors.New("unknown key (want msisdn, imsi, label, data, sms)")
		}
		if err != nil {
			return SIMConfig{}, fmt.Errorf("bscemu: SIM %q: %s: %w", spec, k, err)
		}
	}
	return sc, nil
}

func parseSize(v string) (int64, error) {
	mult := int64(1)
	upper := strings.ToUpper(v)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}} {
		if strings.HasSuffix(upper, u.suffix) {
			mult, upper = u.mult, strings.TrimSuffix(upper, u.suffix)
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(upper), 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want a positive number with optional kB/MB/GB", v)
	}
	return n * mult, nil
}

// SelfSignedTLS makes a throwaway certificate for hosts (names or IPs) and
// returns the server config and the certificate PEM, which a client can
// use as its CA file.
func SelfSignedTLS(hosts ...string) (*tls.Config, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("bscemu: TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, fmt.Errorf("bscemu: TLS serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "bscemu"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("bscemu: TLS certificate: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, certPEM, nil
}

// ServerTLS returns the TLS config Config asks for: nil for plain HTTP, the
// given key pair, or a self-signed certificate for Listen's host (whose PEM
// is returned so the CLI can print or save it for clients).
func (c Config) ServerTLS() (*tls.Config, []byte, error) {
	switch {
	case c.TLSCertFile != "" && c.TLSKeyFile != "":
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("bscemu: TLS key pair: %w", err)
		}
		return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil, nil
	case c.TLSCertFile != "" || c.TLSKeyFile != "":
		return nil, nil, errors.New("bscemu: TLSCertFile and TLSKeyFile must be set together")
	case c.TLSSelfSigned:
		host, _, err := net.SplitHostPort(c.Listen)
		if err != nil {
			return nil, nil, fmt.Errorf("bscemu: listen address %q: %w", c.Listen, err)
		}
		return SelfSignedTLS(host, "localhost", "127.0.0.1", "::1")
	}
	return nil, nil, nil
}
