from nimbus.services.compute.main import main

main()
