package main

const (
	sysOpenat2    = 437
	sysRenameat2  = 276
	sysNewfstatat = 79
	sysUnlinkat   = 35
)
