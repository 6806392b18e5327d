from onemin_relay.cli import main

main()
