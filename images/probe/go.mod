module lakehouse/probe

go 1.26
