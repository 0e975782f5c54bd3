from nimbus.services.guestagent.main import main

main()
