package tlsio

import (
	"bytes"
	"crypto/ecdh"
	"encoding/hex"
	"strings"
	"testing"
)

// Values from RFC 8448, Section 3 (simple 1-RTT) and Section 4 (resumed).
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	rfcClientHello = "010000c00303cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7000006130113031302010000910000000b0009000006736572766572ff01000100000a00140012001d0017001800190100010101020103010400230000003300260024001d002099381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aaf2c002b0003020304000d0020001e040305030603020308040805080604010501060102010402050206020202002d00020101001c00024001"
	rfcServerHello = "020000560303a6af06a4121860dc5e6e60249cd34c95930c8ac5cb1434dac155772ed3e2692800130100002e00330024001d0020c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f002b00020304"
	rfcEE          = "080000240022000a00140012001d00170018001901000101010201030104001c0002400100000000"
	rfcCert        = "0b0001b9000001b50001b0308201ac30820115a003020102020102300d06092a864886f70d01010b0500300e310c300a06035504031303727361301e170d3136303733303031323335395a170d3236303733303031323335395a300e310c300a0603550403130372736130819f300d06092a864886f70d010101050003818d0030818902818100b4bb498f8279303d980836399b36c6988c0c68de55e1bdb826d3901a2461eafd2de49a91d015abbc9a95137ace6c1af19eaa6af98c7ced43120998e187a80ee0ccb0524b1b018c3e0b63264d449a6d38e22a5fda430846748030530ef0461c8ca9d9efbfae8ea6d1d03e2bd193eff0ab9a8002c47428a6d35a8d88d79f7f1e3f0203010001a31a301830090603551d1304023000300b0603551d0f0404030205a0300d06092a864886f70d01010b05000381810085aad2a0e5b9276b908c65f73a7267170618a54c5f8a7b337d2df7a594365417f2eae8f8a58c8f8172f9319cf36b7fd6c55b80f21a03015156726096fd335e5e67f2dbf102702e608ccae6bec1fc63a42a99be5c3eb7107c3c54e9b9eb2bd5203b1c3b84e0a8b2f759409ba3eac9d91d402dcc0cc8f8961229ac9187b42b4de10000"
	rfcCV          = "0f000084080400805a747c5d88fa9bd2e55ab085a61015b7211f824cd484145ab3ff52f1fda8477b0b7abc90db78e2d33a5c141a078653fa6bef780c5ea248eeaaa785c4f394cab6d30bbe8d4859ee511f602957b15411ac027671459e46445c9ea58c181e818e95b8c3fb0bf3278409d3be152a3da5043e063dda65cdf5aea20d53dfacd42f74f3"
	rfcSFinished   = "140000209b9b141d906337fbd2cbdce71df4deda4ab42c309572cb7fffee5454b78f0718"
	rfcCFinished   = "14000020a8ec436d677634ae525ac1fcebe11a039ec17694fac6e98527b642f2edd5ce61"
	// The client's Finished as it goes on the wire (client handshake key, seq 0).
	rfcCFinishedRecord = "1703030035 75ec4dc238cce60b298044a71e219c56cc77b0517fe9b93c7a4bfc44d87f38f80338ac98fc46deb384bd1caeacab6867d726c40546"
	rfcResumeCHPrefix  = "010001fc03031bc3ceb6bbe39cff938355b5a50adb6db21b7a6af649d7b4bc419d7876487d95000006130113031302010001cd0000000b0009000006736572766572ff01000100000a00140012001d00170018001901000101010201030104003300260024001d0020e4ffb68ac05f8d96c99da26698346c6be16482badddafe051a66b4f18d668f0b002a0000002b0003020304000d0020001e040305030603020308040805080604010501060102010402050206020202002d00020101001c0002400100150057000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000002900dd00b800b22c035d829359ee5ff7af4ec900000000262a6494dc486d2c8a34cb33fa90bf1b0070ad3c498883c9367c09a2be785abc55cd226097a3a982117283f82a03a143efd3ff5dd36d64e861be7fd61d2827db279cce145077d454a3664d4e6da4d29ee03725a6a4dafcd0fc67d2aea70529513e3da2677fa5906c5b3f7d8f92f228bda40dda721470f9fbf297b5aea617646fac5c03272e970727c621a79141ef5f7de6505e5bfbc388e93343694093934ae4d357fad6aacb"
)

func eqHex(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	if w := unhex(t, want); !bytes.Equal(got, w) {
		t.Errorf("%s = %x, want %x", what, got, w)
	}
}

func TestRFC8448KeySchedule(t *testing.T) {
	s := suiteByID(suiteAES128GCM)
	transcript := s.hash.New()
	th := func(msgs ...string) []byte {
		for _, m := range msgs {
			transcript.Write(unhex(t, m))
		}
		return transcript.Sum(nil)
	}

	srvPriv, err := ecdh.X25519().NewPrivateKey(unhex(t, "b1580eeadf6dd589b8ef4f2d5652578cc810e9980191ec8d058308cea216a21e"))
	if err != nil {
		t.Fatal(err)
	}
	eqHex(t, "server public key", srvPriv.PublicKey().Bytes(), "c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f")
	ch, err := parseClientHello(unhex(t, rfcClientHello))
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.keyShares) != 1 || ch.keyShares[0].group != groupX25519 {
		t.Fatalf("key shares %+v", ch.keyShares)
	}
	shared, err := keyExchange(groupX25519, ch.keyShares[0].data, srvPriv)
	if err != nil {
		t.Fatal(err)
	}
	eqHex(t, "shared secret", shared, "8bd4054fb55b9d63fdfbacf9f04b9f0d35e6d63f537563efd46272900f89492d")

	early := s.earlySecret(nil)
	eqHex(t, "early secret", early, "33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a")
	hsSecret := s.nextSecret(early, shared)
	eqHex(t, "handshake secret", hsSecret, "1dc826e93606aa6fdc0aadc12f741b01046aa6b99f691ed221a9f0ca043fbeac")
	h := th(rfcClientHello, rfcServerHello)
	cHS := s.deriveSecret(hsSecret, "c hs traffic", h)
	sHS := s.deriveSecret(hsSecret, "s hs traffic", h)
	eqHex(t, "c hs traffic", cHS, "b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21")
	eqHex(t, "s hs traffic", sHS, "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
	master := s.nextSecret(hsSecret, nil)
	eqHex(t, "master secret", master, "18df06843d13a08bf2a449844c5f8a478001bc4d4c627984d5a41da8d0402919")
	key, iv := s.trafficKeys(sHS)
	eqHex(t, "server hs key", key, "3fce516009c21727d0f2e4e86ee403bc")
	eqHex(t, "server hs iv", iv, "5d313eb2671276ee13000b30")
	key, iv = s.trafficKeys(cHS)
	eqHex(t, "client hs key", key, "dbfaa693d1762c5b666af5d950258d01")
	eqHex(t, "client hs iv", iv, "5bd3c71b836e0b76bb73265f")

	eqHex(t, "server finished", s.finishedMAC(sHS, th(rfcEE, rfcCert, rfcCV)), rfcSFinished[8:])
	h = th(rfcSFinished)
	cAP := s.deriveSecret(master, "c ap traffic", h)
	sAP := s.deriveSecret(master, "s ap traffic", h)
	eqHex(t, "c ap traffic", cAP, "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5")
	eqHex(t, "s ap traffic", sAP, "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643")
	key, iv = s.trafficKeys(sAP)
	eqHex(t, "server ap key", key, "9f02283b6c9c07efc26bb9f2ac92e356")
	eqHex(t, "server ap iv", iv, "cf782b88dd83549aadf1e984")
	eqHex(t, "client finished", s.finishedMAC(cHS, h), rfcCFinished[8:])
	key, iv = s.trafficKeys(cAP)
	eqHex(t, "client ap key", key, "17422dda596ed5d9acd890e3c63f5051")
	eqHex(t, "client ap iv", iv, "5b78923dee08579033e523d9")
	res := s.deriveSecret(master, "res master", th(rfcCFinished))
	eqHex(t, "res master", res, "7df235f2031d2a051287d02b0241b0bfdaf86cc856231f2d5aba46c434ec196c")
	psk := s.expandLabel(res, "resumption", []byte{0, 0}, s.hash.Size())
	eqHex(t, "ticket psk", psk, "4ecd0eb6ec3b4d87f5d6028f922ca4c5851a277fd41311c9e62d2c9492e1c4f3")

	// Section 4: the binder of the resumed ClientHello, under that PSK.
	early = s.earlySecret(psk)
	eqHex(t, "resumed early secret", early, "9b2188e9b2fc6d64d71dc329900e20bb41915000f678aa839cbb797cb7d8332c")
	binderKey := s.deriveSecret(early, "res binder", s.emptyHash())
	eqHex(t, "binder key", binderKey, "69fe131a3bbad5d63c64eebcc30e395b9d8107726a13d074e389dbc8a4e47256")
	ph := s.hash.New()
	ph.Write(unhex(t, rfcResumeCHPrefix))
	eqHex(t, "binder", s.finishedMAC(binderKey, ph.Sum(nil)), "3add4fb2d8fdf822a0ca3cf7678ef5e88dae990141c5924d57bb6fa31b9e5f9d")
}

// TestRFC8448Record seals and opens the client's Finished record.
func TestRFC8448Record(t *testing.T) {
	s := suiteByID(suiteAES128GCM)
	cHS := unhex(t, "b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21")
	var w, r recordKeys
	if err := w.set(s, cHS); err != nil {
		t.Fatal(err)
	}
	if err := r.set(s, cHS); err != nil {
		t.Fatal(err)
	}
	rec := w.seal(nil, recordTypeHandshake, unhex(t, rfcCFinished), 0)
	eqHex(t, "sealed record", rec, rfcCFinishedRecord)
	typ, pt, _, err := r.open(rec)
	if err != nil || typ != recordTypeHandshake {
		t.Fatalf("open: type %d, %v", typ, err)
	}
	eqHex(t, "opened record", pt, rfcCFinished)
	if r.seq != 1 || w.seq != 1 {
		t.Fatalf("sequence numbers %d, %d", r.seq, w.seq)
	}
	// A second open of the same bytes uses sequence 1 and must fail.
	rec2 := unhex(t, rfcCFinishedRecord)
	if _, _, a, err := r.open(rec2); err == nil || a != AlertBadRecordMAC {
		t.Fatalf("replayed record: alert %v, %v", a, err)
	}
}

// TestRecordPaddingAndLimits covers the inner content type, padding, the
// all-padding record and the size limits.
func TestRecordPaddingAndLimits(t *testing.T) {
	for _, id := range []uint16{suiteAES128GCM, suiteAES256GCM, suiteChaCha20} {
		s := suiteByID(id)
		secret := bytes.Repeat([]byte{7}, s.hash.Size())
		var w, r recordKeys
		_ = w.set(s, secret)
		_ = r.set(s, secret)
		rec := w.seal(nil, recordTypeAppData, []byte("hello"), 100)
		if got := len(rec); got != recordHeaderLen+5+1+100+16 {
			t.Fatalf("%#x: record length %d", id, got)
		}
		typ, pt, _, err := r.open(rec)
		if err != nil || typ != recordTypeAppData || string(pt) != "hello" {
			t.Fatalf("%#x: open padded: %d %q %v", id, typ, pt, err)
		}
		// All padding: a zero content type.
		rec = w.seal(nil, 0, nil, 10)
		if _, _, a, err := r.open(rec); err == nil || a != AlertUnexpectedMessage {
			t.Fatalf("%#x: all-padding record: %v %v", id, a, err)
		}
		// A full record opens; one byte more of plaintext is an overflow.
		rec = w.seal(nil, recordTypeAppData, make([]byte, maxPlaintext), 0)
		if _, pt, _, err := r.open(rec); err != nil || len(pt) != maxPlaintext {
			t.Fatalf("%#x: full record: %d %v", id, len(pt), err)
		}
		rec = w.seal(nil, recordTypeAppData, make([]byte, maxPlaintext+1), 0)
		if _, _, a, err := r.open(rec); err == nil || a != AlertRecordOverflow {
			t.Fatalf("%#x: oversized plaintext: %v %v", id, a, err)
		}
		// A flipped bit anywhere fails authentication.
		rec = w.seal(nil, recordTypeAppData, []byte("x"), 0)
		rec[len(rec)-1] ^= 1
		if _, _, a, err := r.open(rec); err == nil || a != AlertBadRecordMAC {
			t.Fatalf("%#x: tampered record: %v %v", id, a, err)
		}
	}
}
