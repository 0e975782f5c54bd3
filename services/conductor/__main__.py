from nimbus.services.conductor.main import main

main()
