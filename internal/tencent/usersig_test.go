package tencent

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Test vector: TLSSigAPIv2 applied to Tencent's published sample key.
const (
	vecKey      = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
	vecAppID    = 1400000000
	vecUser     = "xiaojun"
	vecTime     = 1700000000
	vecExpire   = 86400
	vecSig      = "SNF4FmVCPucoXsBOpbVF3fFCf57JPm0ezZ1jeVILlVc="
	vecContents = "TLS.identifier:xiaojun\nTLS.sdkappid:1400000000\nTLS.time:1700000000\nTLS.expire:86400\n"
)

func TestUserSigTestVector(t *testing.T) {
	if got := userSigHMAC(vecKey, vecUser, vecAppID, vecTime, vecExpire); got != vecSig {
		t.Fatalf("HMAC over %q = %s, want %s", vecContents, got, vecSig)
	}

	sig, err := GenUserSig(vecAppID, vecKey, vecUser, vecExpire*time.Second, time.Unix(vecTime, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9*\-_]+$`).MatchString(sig) {
		t.Errorf("sig %q has characters outside Tencent's alphabet", sig)
	}
	doc, err := decodeUserSig(sig)
	if err != nil {
		t.Fatal(err)
	}
	want := userSigDoc{Version: "2.0", Identifier: vecUser, SDKAppID: vecAppID, Expire: vecExpire, Time: vecTime, Sig: vecSig}
	if *doc != want {
		t.Errorf("decoded %+v, want %+v", *doc, want)
	}
}

// encodeDoc builds a UserSig from raw JSON the way another signer may: different
// whitespace, key order and compression level.
func encodeDoc(t *testing.T, json string, level int) string {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zlib.NewWriterLevel(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write([]byte(json)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	s := base64.StdEncoding.EncodeToString(buf.Bytes())
	return strings.NewReplacer("+", "*", "/", "-", "=", "_").Replace(s)
}

func TestVerifyUserSig(t *testing.T) {
	now := time.Unix(vecTime, 0)
	good, err := GenUserSig(vecAppID, vecKey, vecUser, vecExpire*time.Second, now)
	if err != nil {
		t.Fatal(err)
	}
	foreign := encodeDoc(t, `{ "TLS.sig": "`+vecSig+`", "TLS.time": 1700000000, "TLS.expire": 86400,
		"TLS.sdkappid": 1400000000, "TLS.identifier": "xiaojun", "TLS.ver": "2.0" }`, zlib.DefaultCompression)
	tampered := encodeDoc(t, `{"TLS.ver":"2.0","TLS.identifier":"xiaojun","TLS.sdkappid":1400000000,"TLS.expire":999999,"TLS.time":1700000000,"TLS.sig":"`+vecSig+`"}`, zlib.NoCompression)
	withUserBuf := encodeDoc(t, `{"TLS.ver":"2.0","TLS.identifier":"xiaojun","TLS.sdkappid":1400000000,"TLS.expire":86400,"TLS.time":1700000000,"TLS.sig":"`+vecSig+`","TLS.userbuf":"AAAA"}`, zlib.DefaultCompression)

	tests := []struct {
		name  string
		appID int64
		key   string
		user  string
		sig   string
		at    time.Time
		want  error
	}{
		{"round trip", vecAppID, vecKey, vecUser, good, now, nil},
		{"last valid second", vecAppID, vecKey, vecUser, good, now.Add(vecExpire * time.Second), nil},
		{"another signer's encoding", vecAppID, vecKey, vecUser, foreign, now.Add(time.Hour), nil},
		{"expired", vecAppID, vecKey, vecUser, good, now.Add(vecExpire*time.Second + time.Second), ErrUserSigExpired},
		{"wrong key", vecAppID, "another-key", vecUser, good, now, ErrUserSigMismatch},
		{"wrong identifier", vecAppID, vecKey, "administrator", good, now, ErrUserSigMismatch},
		{"wrong SDKAppID", vecAppID + 1, vecKey, vecUser, good, now, ErrUserSigMismatch},
		{"tampered expiry", vecAppID, vecKey, vecUser, tampered, now.Add(48 * time.Hour), ErrUserSigMismatch},
		{"userbuf", vecAppID, vecKey, vecUser, withUserBuf, now, ErrUserSigMismatch},
		{"not base64", vecAppID, vecKey, vecUser, "!!!", now, ErrUserSigMalformed},
		{"not zlib", vecAppID, vecKey, vecUser, "aGVsbG8_", now, ErrUserSigMalformed},
		{"truncated", vecAppID, vecKey, vecUser, good[:len(good)/2], now, ErrUserSigMalformed},
		{"empty", vecAppID, vecKey, vecUser, "", now, ErrUserSigMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyUserSig(tt.appID, tt.key, tt.user, tt.sig, tt.at)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("VerifyUserSig = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestGenUserSigRejectsBadInput(t *testing.T) {
	now := time.Unix(vecTime, 0)
	tests := []struct {
		name   string
		appID  int64
		key    string
		user   string
		expire time.Duration
	}{
		{"zero SDKAppID", 0, vecKey, vecUser, time.Hour},
		{"empty key", vecAppID, "", vecUser, time.Hour},
		{"empty identifier", vecAppID, vecKey, "", time.Hour},
		{"sub-second expiry", vecAppID, vecKey, vecUser, time.Millisecond},
		{"negative expiry", vecAppID, vecKey, vecUser, -time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if sig, err := GenUserSig(tt.appID, tt.key, tt.user, tt.expire, now); err == nil {
				t.Errorf("GenUserSig = %q, want an error", sig)
			}
		})
	}
}
