module github.com/tether-net/tether/tests/kvm/testdata/echoexit

go 1.26.0
