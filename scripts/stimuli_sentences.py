"""The project's own localizer sentences, written for topobrain (not taken from any study).

Each line: ``structure | topic | sentence``. Every sentence has exactly 12 words, lower
case, no punctuation, no digits, no contractions or hyphens (the layout of the published
localizers, where the words are shown one at a time). Structures:

- ``active``: a simple active clause (transitive, intransitive or ditransitive)
- ``passive``: a passive clause, with or without a by-phrase
- ``subj-rel`` / ``obj-rel``: a subject- or object-extracted relative clause
- ``wh-q`` / ``yn-q``: a wh-question or a yes/no question (no question mark)
- ``subord``: an adverbial clause (because, although, when, if, after, before, until ...)
- ``complement``: a clausal complement (that-clause, embedded question, infinitive)
- ``coord``: two coordinated clauses
- ``there``: an existential ``there`` sentence
- ``cleft``: an it-cleft or a pseudo-cleft

``scripts/make_stimuli.py`` reads :data:`SENTENCES` and checks the count of words.
"""

RAW = """
active | food | my grandmother bakes a loaf of dark rye bread every sunday morning
active | animals | the old farmer always feeds his chickens before the sun comes up
active | travel | we drove slowly along the coast for hours without seeing another car
active | school | the new teacher gave each student a small notebook and a pencil
active | weather | a cold wind blew across the empty fields all through the night
active | music | the young pianist practised the same difficult piece for three long weeks
active | sport | our team lost the final match after a long and tiring season
active | science | the chemist carefully mixed the two clear liquids in a glass beaker
active | home | she painted the kitchen walls a pale shade of yellow last spring
active | work | the manager sent a long email to everyone in the office today
active | nature | tall pine trees grow on the steep slopes above the quiet lake
active | health | the nurse checked the sick patient twice during the long night shift
active | city | large crowds of tourists fill the narrow streets of the old town
active | family | my little brother likes to build enormous towers out of wooden blocks
active | technology | the engineer repaired the broken printer in the hall with a screwdriver
active | history | ancient sailors crossed the open sea in small boats made of reeds
active | art | the sculptor carved a graceful swan from a single block of marble
active | money | my aunt saves a few coins in a jar on the windowsill
active | food | the hungry children ate all the strawberries before anyone could stop them
active | animals | a family of ducks crossed the road in front of our house
active | travel | the train slowly climbed the steep mountain through a series of tunnels
active | work | the baker opens his small shop at dawn every single weekday morning
active | nature | heavy snow covered the whole village and closed the roads for days
active | sport | the tired runner finally reached the finish line just behind the winner
active | family | my parents celebrated their wedding anniversary last week with a quiet dinner
active | home | the cat sleeps on the warm rug near the fireplace all afternoon
active | school | the students wrote short essays about some of their favourite childhood memories
active | technology | the company released a cheaper version of its popular phone last month
active | city | the mayor opened a new public library in the northern district yesterday
active | health | regular exercise and good sleep help most people recover quickly from illness
passive | food | the hot soup was served in large wooden bowls with fresh bread
passive | history | the old castle was built by a wealthy family many centuries ago
passive | science | the results of the experiment were published last year in a journal
passive | city | the bridge was closed for repairs during most of the hot summer
passive | art | the painting was stolen from the city museum on a rainy night
passive | work | all the new workers were trained by the most experienced engineer here
passive | nature | the forest was badly damaged by a large fire three summers ago
passive | sport | the winning goal was scored by a young striker near the end
passive | school | the exam papers were marked by two teachers who worked in pairs
passive | music | the song was written by a young woman living in a village
passive | animals | the injured fox was found by two hikers near the frozen river
passive | technology | the data is stored on large servers in several different foreign countries
passive | health | the old hospital was replaced by a large modern building last year
passive | money | the stolen money was never found by the police or the bank
passive | travel | our luggage was lost somewhere between the airport and the hotel yesterday
passive | home | the roof of the house was badly damaged by a heavy storm
passive | family | the baby was named after her grandfather who sadly died last winter
passive | weather | the small harbour was flooded when the nearby river burst its banks
passive | food | the birthday cake had been decorated with tiny flowers made of sugar
passive | history | the treaty was signed in a small room by a few diplomats
subj-rel | animals | the dog that chased the postman every morning has finally calmed down
subj-rel | work | the woman who runs the bakery also teaches a cooking class weekly
subj-rel | science | scientists who study volcanoes often have to travel to very remote places
subj-rel | city | the bus that stops near our house is always late on mondays
subj-rel | music | the band that played at the summer festival released a new album
subj-rel | school | the boy who won the spelling contest was given a small trophy
subj-rel | health | doctors who work at night usually need more rest than they get
subj-rel | travel | the ship that carried the supplies arrived more than two weeks late
subj-rel | nature | the river that runs through the valley freezes over almost every winter
subj-rel | technology | the app that tracks your daily steps was downloaded by millions worldwide
subj-rel | art | the artist who painted this mural grew up in the same neighbourhood
subj-rel | family | my cousin who lives abroad calls our grandmother on the phone weekly
subj-rel | food | the restaurant that served fresh fish closed after the old owner retired
subj-rel | sport | the player who missed the penalty later apologised to the angry fans
subj-rel | money | people who save a little money every month rarely worry about emergencies
obj-rel | animals | the old horse that the children loved was sold to a neighbour
obj-rel | food | the pie that my uncle baked smelled strongly of apples and cinnamon
obj-rel | school | the book that the teacher recommended turned out to be rather boring
obj-rel | travel | the hotel that we booked online looked nothing like the glossy pictures
obj-rel | work | the report that the director requested last week is still not finished
obj-rel | music | the melody that the old man whistled stayed in my head afterwards
obj-rel | home | the chair that my father repaired broke again within a single week
obj-rel | science | the theory that the students tested predicted the results of the trial
obj-rel | city | the park that the council planned last year will open next spring
obj-rel | family | the letter that my sister wrote from summer camp made everyone laugh
obj-rel | art | the statue that the museum bought last year is small and plain
obj-rel | technology | the software that the engineers designed crashed badly on the first day
obj-rel | health | the medicine that the doctor prescribed made me feel very sleepy afterwards
obj-rel | sport | the coach whom the players admired left the club suddenly without warning
obj-rel | nature | the flowers that we planted in april finally bloomed early in june
wh-q | travel | which road should we take if we want to avoid the traffic
wh-q | food | what did you put in this sauce to make it so spicy
wh-q | work | who will take care of the shop while the owner is away
wh-q | science | why do some metals rust quickly while others stay bright for years
wh-q | school | how many pages did the students have to read before the test
wh-q | family | where did your grandparents live before they moved to the big city
wh-q | nature | when do the swallows usually return from their long journey to africa
wh-q | health | how long should someone rest after a serious injury to the back
wh-q | money | how much did the repairs to the old roof cost in total
wh-q | music | which instrument did the famous composer learn to play as a child
wh-q | home | where should we hang the large mirror that your mother gave us
wh-q | sport | who scored the most points in the big game on saturday night
wh-q | city | why are so many small shops in the centre closing this year
wh-q | technology | what happens to old phones after people throw them in the bin
wh-q | animals | how do bees find their way back to the hive every evening
yn-q | travel | did you remember to pack the maps and the spare car keys
yn-q | food | would you like some more tea or shall i make fresh coffee
yn-q | school | have the students finished reading the book for the next history class
yn-q | health | does the clinic open early on weekdays or only late at weekends
yn-q | work | can the new assistant start on monday or does she need time
yn-q | weather | will it still be raining when we arrive at the beach tomorrow
yn-q | family | is your younger brother still living at home with your parents now
yn-q | technology | could the old computer run the new program without any serious problems
yn-q | sport | has the team ever won the championship in its long famous history
yn-q | home | should we paint the bedroom before or after the new carpet arrives
subord | weather | because the roads were icy the school buses did not run today
subord | family | although my sister hates flying she still visits us twice a year
subord | food | when the bread is golden brown take it out of the oven
subord | travel | if the train is late again we will miss the opening ceremony
subord | work | after the meeting ended everyone went back to their own desks quietly
subord | health | before the operation the surgeon explained every single step to the patient
subord | school | while the teacher was writing on the board somebody opened the window
subord | nature | since the rain stopped the garden has been filled with tiny snails
subord | sport | unless the captain recovers quickly the team will have to play alone
subord | money | once the loan is repaid the family will finally own the house
subord | music | as the choir began to sing the whole audience fell completely silent
subord | technology | whenever the power goes out the old clock in the hall blinks
subord | animals | until the puppy is trained it must stay outside in the yard
subord | city | though the museum is free very few people visit it in winter
subord | art | after the paint had dried the artist added a layer of varnish
subord | home | because the heater broke we spent the whole weekend wearing thick jumpers
subord | history | when the war ended the soldiers returned home to their ruined villages
subord | science | if water is heated to a high temperature it turns into steam
complement | science | the researchers believe that the new vaccine will prevent most serious\
 infections
complement | work | my boss told me this morning that the contract had been signed
complement | family | nobody knew whether the old uncle would really come to the wedding
complement | travel | the guide explained how the ancient temple had been built by hand
complement | school | the principal announced that classes would start an hour later next week
complement | health | the doctor wondered why the fever had suddenly returned after a week
complement | money | economists predict that prices will keep rising for at least several months
complement | food | she promised to bring a large salad to the picnic on sunday
complement | sport | the fans hoped that their team would win at least one game
complement | nature | the farmers noticed that the river was rising much faster than usual
complement | city | the residents asked the council to build a safer crossing near schools
complement | technology | the users complained that the latest update had made their phones slower
complement | animals | the zookeeper decided to move the two lions to a bigger enclosure
complement | music | my teacher says that i should practise scales for an hour daily
complement | home | in the end we agreed to sell the sofa and buy another
complement | history | historians still argue about why the great empire collapsed so very quickly
coord | weather | the sky turned dark and the first drops of rain began falling
coord | food | he chopped the onions slowly but his eyes still filled with tears
coord | family | my mother sings in a choir and my father plays the drums
coord | travel | we missed the last bus so we walked home along the river
coord | work | the printer ran out of paper and nobody knew where to look
coord | school | the lesson was long but the students listened carefully to every word
coord | sport | the goalkeeper slipped on the wet grass and the ball rolled in
coord | animals | the cat jumped onto the table and knocked over a full glass
coord | city | the streets were quiet yet every cafe on the square was full
coord | health | she took the tablets for a week and the pain slowly disappeared
coord | home | the kettle boiled and the smell of toast filled the small kitchen
coord | art | the gallery was crowded but nobody seemed to look at the paintings
coord | nature | the leaves turned red and gold and the evenings grew much colder
coord | technology | the screen went black and the laptop refused to turn on again
coord | money | the shop lowered its prices again but the customers still stayed away
there | nature | there is a small waterfall hidden behind the trees at the end
there | city | there are more bicycles than cars in some of the old neighbourhoods
there | school | there was a strange noise coming from the back of the classroom
there | food | there is nothing better than warm soup on a cold winter evening
there | history | there were no proper roads in this valley until the railway arrived
there | home | there is a spider living in the corner of the bathroom ceiling
there | work | there will be a short meeting about the budget after lunch today
there | animals | there are many kinds of owls that hunt only in complete darkness
there | weather | there was so much fog that the airport cancelled all morning flights
there | music | there is an old piano in the hall that nobody ever plays
cleft | family | it was my grandfather who taught me how to fish in rivers
cleft | food | it is the fresh basil that gives this pasta its wonderful smell
cleft | work | it was the youngest engineer who finally found the cause of failure
cleft | history | it was in this very house that the famous poet was born
cleft | science | what surprised the scientists most was how quickly the old ice melted
cleft | travel | what we really needed after the long flight was a hot bath
cleft | school | it was the quiet girl at the back who answered every question
cleft | sport | what the team lacks is a strong defender who reads the game
cleft | nature | it is the cold sea air that keeps the island so green
cleft | money | what worries the owners most is the rising cost of their electricity
active | weather | the morning sun slowly melted the thin frost on the grass outside
active | animals | the tiny spider spun a delicate web between two branches of ivy
active | history | the villagers hid their grain in caves during the long winter siege
active | music | an old man played the violin on the corner for spare change
active | money | the bank raised its interest rates for the third time this year
passive | weather | the outdoor concert was cancelled because of the strong winds and rain
passive | animals | the rare birds were counted by volunteers walking along the whole coastline
subord | food | if you add too much salt the stew will taste absolutely terrible
subord | family | when my grandmother was young she walked four miles to school daily
obj-rel | history | the letters that the soldier sent home were kept in a box
wh-q | art | who designed the beautiful gardens that surround the old palace near here
yn-q | animals | do cats really see better than people when the room is dark
there | technology | there is a tiny camera hidden inside the smoke alarm upstairs somewhere
coord | history | the king fled to the north and his army surrendered soon after
complement | weather | the forecast says that heavy snow will fall across the region tonight
cleft | home | it was the smell of fresh paint that kept me awake overnight
"""


def _parse(raw: str):
    out = []
    for line in raw.strip().splitlines():
        structure, topic, text = (part.strip() for part in line.split("|"))
        out.append((structure, topic, text))
    return out


#: (structure, topic, sentence) triples, in writing order.
SENTENCES = _parse(RAW)

