from medreq.cli import main

main()
