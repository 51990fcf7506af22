module github.com/signgate/signgate

go 1.26.8
