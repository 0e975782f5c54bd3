from nimbus.services.database.main import main

main()
